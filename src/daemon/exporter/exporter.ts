// serve's /probe: a blackbox_exporter-compatible prober that checks half-open.
// Prometheus scrapes /probe?target=…&module=…; each request runs one probe
// through the monitor's on-demand slots (Monitor.probeOnce) and answers with
// that probe's metrics only.
//
// It must not become a scanning oracle: off (404) without exporter.allow; a
// literal target outside the list is refused (403) before anything is sent;
// a name is resolved and the address it yields must be in the list too (403
// otherwise; a name that does not resolve is probe_success 0, as blackbox
// answers). At most max_concurrent requests at once and max_per_second,
// refused at once beyond that (503, 429), never queued; refusals are logged
// rate-limited.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { HalfopenError } from '../../errors';
import { addressBytes, formatAddress, isV4, parseAddress } from '../../targets/address';
import { lookupHost } from '../../targets/resolve';
import { describeVerdict } from '../../engine/probe-table';
import { isLocalAddress, routeTo } from '../../engine/route';
import { AllowList } from '../allow-list';
import type { ProbeOnce } from '../on-demand';
import type { ExporterConfig, ModuleConfig } from './config';
import { Limiter } from './limiter';
import { RateLimitedLog, refusalLog } from '../rate-limited-log';
import { ProbeOutcome, debugOutput, fnv1a32, logLine, renderProbe } from './exposition';
import { ProbeRequest, parseProbeRequest } from './request';

/** Looks a name up: every address, of one family (4, 6) or both (0). */
export type LookupAddresses = (host: string, family: 0 | 4 | 6, deadline?: number) => Promise<string[]>;

/**
 * getaddrinfo runs on libuv's thread pool (4 threads), which the daemon's
 * file writes (events, state file) share, and a lookup cannot be cancelled
 * when its probe's deadline passes. So at most this many run at once; other
 * names wait their turn within their own deadline.
 */
const SYSTEM_LOOKUPS = 2;
let lookupsRunning = 0;
const lookupQueue: Array<() => void> = [];

/** The system resolver (/etc/hosts, then DNS, as blackbox's Go resolver) through the one resolver (src/targets/resolve.ts), SYSTEM_LOOKUPS at a time. */
export const systemLookup: LookupAddresses = async (host, family, deadline = Infinity) => {
  // A turn is handed from the lookup that ends to the next in line, so never more than SYSTEM_LOOKUPS run.
  if (lookupsRunning < SYSTEM_LOOKUPS) lookupsRunning++;
  else await new Promise<void>((r) => lookupQueue.push(r));
  const pass = () => { const next = lookupQueue.shift(); if (next) next(); else lookupsRunning--; };
  if (Date.now() >= deadline) { // its probe gave up while it waited: no lookup for nobody
    pass();
    throw Object.assign(new Error('no turn at the resolver before the deadline'), { code: 'ETIMEOUT' });
  }
  try {
    const r = await lookupHost(host, { family: family === 0 ? undefined : family, deadlineMs: deadline === Infinity ? undefined : Math.max(0, deadline - Date.now()) });
    if (!r.addrs.length) throw Object.assign(new Error(`cannot resolve "${host}": ${r.error}`), { code: r.error });
    return r.addrs.map(formatAddress);
  } finally {
    pass();
  }
};

const TEXT = 'text/plain; charset=utf-8';
const EXPOSITION = 'text/plain; version=0.0.4; charset=utf-8';

export interface ProbeAnswer { status: number; type: string; body: string; headers?: Record<string, string> }

/** Picks the address blackbox's chooseProtocol would: the preferred family, else (with fallback) the other. */
export function chooseAddress(addrs: bigint[], m: ModuleConfig): bigint | null {
  const want4 = m.preferredIpProtocol === 'ip4';
  return addrs.find((a) => isV4(a) === want4) ?? (m.ipProtocolFallback ? addrs[0] ?? null : null);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${Math.max(0, Math.round(ms))} ms`)), Math.max(0, ms));
    p.then((v) => { clearTimeout(t); resolve(v); }, (e) => { clearTimeout(t); reject(e); });
  });
}

export class Exporter {
  private cfg: ExporterConfig | undefined;
  private allow: AllowList | null = null;
  private limiter: Limiter;
  private prober: ProbeOnce | null = null;
  private reserved = 0;
  private refreshTimer: NodeJS.Timeout | null = null;
  private readonly refusals: RateLimitedLog;
  /** Answers by HTTP status, and probes by verdict state (plus "error": no SYN went out). */
  readonly requests = new Map<number, number>();
  readonly probes = new Map<string, number>();

  constructor(cfg: ExporterConfig | undefined, private readonly log: (m: string) => void, private readonly lookup: LookupAddresses = systemLookup) {
    this.limiter = new Limiter(cfg?.maxConcurrent ?? 1, cfg?.maxPerSecond ?? 1);
    this.refusals = refusalLog(log);
    this.setConfig(cfg);
  }

  get enabled(): boolean { return this.cfg !== undefined; }

  /**
   * Throws one E_CONFIG line for a module whose source is not an address of
   * this host (its SYNs could not leave): at start and before a reload applies.
   */
  static checkSources(cfg: ExporterConfig | undefined): void {
    for (const [name, m] of Object.entries(cfg?.modules ?? {}))
      for (const s of m.source ?? [])
        if (!isLocalAddress(s)) throw new HalfopenError('E_CONFIG', `exporter.modules.${name}.source: ${s} is not an address of this host (ip addr)`);
  }

  /** Probe-table slots to keep for /probe: max_concurrent of the config serve starts with. */
  get slotsWanted(): number { return this.cfg?.maxConcurrent ?? 0; }

  private setConfig(cfg: ExporterConfig | undefined): void {
    this.cfg = cfg;
    this.allow = cfg ? AllowList.parse(cfg.allow, 'exporter.allow') : null;
    if (cfg) this.limiter.configure(this.reserved ? Math.min(cfg.maxConcurrent, this.reserved) : cfg.maxConcurrent, cfg.maxPerSecond);
  }

  /** Looks the allow list's names up (at start, on reload, then every allow_refresh). */
  async refreshAllow(): Promise<void> {
    const a = this.allow;
    if (!a || !a.names.length) return;
    await a.refresh(async (n) => (await this.lookup(n, 0)).map((s) => parseAddress(s)).filter((x): x is bigint => x !== null));
  }

  /**
   * Addresses the engine may find its routes by (one per family, from the
   * allow list) when no backend has an address of that family: only those
   * that route by `dev` (when given), so the matcher's interface stays the
   * backends' one. An exporter-only serve finds its interface this way.
   */
  routeSamples(dev?: string): bigint[] {
    const out: bigint[] = [];
    for (const v4 of [true, false]) {
      const a = this.allow?.sample(v4);
      if (a === undefined) continue;
      try {
        const r = routeTo(formatAddress(a), dev ? { dev } : {});
        if (!dev) dev = r.dev;
        if (r.dev === dev) out.push(a);
      } catch { /* no route for this family: its probes fail with a reason */ }
    }
    return out;
  }

  /** The monitor's on-demand probes, with the slots it keeps for them. */
  attach(prober: ProbeOnce, reservedSlots: number): void {
    this.prober = prober;
    this.reserved = reservedSlots;
    if (this.cfg) this.setConfig(this.cfg);
    if (this.cfg && this.cfg.maxConcurrent > reservedSlots)
      this.log(`warning: exporter.max_concurrent ${this.cfg.maxConcurrent} is more than the ${reservedSlots} probe slots kept at start: ${reservedSlots} at once until a restart`);
  }

  start(): void {
    this.stop();
    const every = this.cfg?.allowRefreshMs;
    if (every && this.allow?.names.length) {
      this.refreshTimer = setInterval(() => { void this.refreshAllow(); }, every);
      this.refreshTimer.unref();
    }
  }

  stop(): void {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    this.refreshTimer = null;
  }

  /** A reloaded config: new allow list, modules and limits (names looked up before it takes over). */
  async reconfigure(cfg: ExporterConfig | undefined): Promise<void> {
    const prev = { cfg: this.cfg, allow: this.allow };
    this.setConfig(cfg);
    const fresh = this.allow;
    this.cfg = prev.cfg;
    this.allow = prev.allow;
    if (fresh?.names.length) await fresh.refresh(async (n) => (await this.lookup(n, 0)).map((s) => parseAddress(s)).filter((x): x is bigint => x !== null));
    this.cfg = cfg;
    this.allow = fresh;
    if (cfg && !prev.cfg && !this.reserved) this.log('warning: exporter: no probe slots were kept at start (no exporter section then): /probe answers 503 until a restart');
    this.start();
  }

  private count(status: number): void { this.requests.set(status, (this.requests.get(status) ?? 0) + 1); }

  private refuse(req: http.IncomingMessage, status: number, why: string): void {
    this.refusals.write(`exporter: refused ${req.method} ${req.url} from ${req.socket.remoteAddress}: ${status} ${why}`);
  }

  /** Answers GET /probe. */
  async handle(req: http.IncomingMessage, url: URL): Promise<ProbeAnswer> {
    const a = await this.answer(req, url);
    this.count(a.status);
    return a;
  }

  private async answer(req: http.IncomingMessage, url: URL): Promise<ProbeAnswer> {
    const cfg = this.cfg, allow = this.allow;
    if (!cfg || !allow) return { status: 404, type: TEXT, body: '/probe is off: it needs exporter.allow in the config\n' };
    if (!this.prober) return { status: 503, type: TEXT, body: 'starting\n' };
    const header = req.headers['x-prometheus-scrape-timeout-seconds'];
    const parsed = parseProbeRequest(url.searchParams, Array.isArray(header) ? header[0] : header, cfg);
    if (!parsed.ok) return { status: 400, type: TEXT, body: `${parsed.error}\n` };
    const p = parsed.value;
    if (p.target.addr !== null && !allow.allows(p.target.addr)) {
      const why = `target ${p.targetText} is outside exporter.allow`;
      this.refuse(req, 403, why);
      return { status: 403, type: TEXT, body: `${why}\n` };
    }
    const adm = this.limiter.admit();
    if (!adm.ok) {
      this.refuse(req, adm.status, adm.error);
      return { status: adm.status, type: TEXT, body: `${adm.error}\n`, headers: { 'retry-after': String(adm.retryAfterS) } };
    }
    try {
      return await this.run(req, p, allow, this.prober);
    } finally {
      this.limiter.release();
    }
  }

  /** One probe: resolve, check the allow list, ask the monitor, render. */
  private async run(req: http.IncomingMessage, p: ProbeRequest, allow: AllowList, prober: ProbeOnce): Promise<ProbeAnswer> {
    const t0 = performance.now();
    const deadline = Date.now() + p.timeoutS * 1000;
    const lines: string[] = [];
    // The probe's log exists for debug=true only: a scrape does not pay for lines nobody reads.
    const L = p.debug ? (level: string, msg: string, kv?: Record<string, string | number>) => { lines.push(logLine(new Date(), level, p.moduleName, p.targetText, msg, kv)); } : () => {};
    const out: ProbeOutcome = { success: false, durationS: 0, dnsLookupS: 0, ipProtocol: 0, ipAddrHash: 0 };
    const m = p.module;
    L('info', 'Beginning probe', { probe: m.prober, timeout_seconds: p.timeoutS });
    const finish = (): ProbeAnswer => {
      out.durationS = (performance.now() - t0) / 1000;
      if (out.success) L('info', 'Probe succeeded', { duration_seconds: out.durationS });
      else L('error', 'Probe failed', { duration_seconds: out.durationS });
      this.probes.set(out.result?.state ?? 'error', (this.probes.get(out.result?.state ?? 'error') ?? 0) + 1);
      const metrics = renderProbe(out);
      return p.debug ? { status: 200, type: TEXT, body: debugOutput(lines, metrics, m) } : { status: 200, type: EXPOSITION, body: metrics };
    };

    L('info', 'Resolving target address', { target: p.target.host, ip_protocol: m.preferredIpProtocol });
    let addrs: bigint[];
    const d0 = performance.now();
    if (p.target.addr !== null) addrs = [p.target.addr];
    else {
      try {
        const family = m.ipProtocolFallback ? 0 : m.preferredIpProtocol === 'ip4' ? 4 : 6;
        const found = await withTimeout(this.lookup(p.target.host, family, deadline), deadline - Date.now());
        addrs = found.map((s) => parseAddress(s)).filter((x): x is bigint => x !== null);
      } catch (err) {
        addrs = [];
        L('error', 'Resolution with IP protocol failed', { err: (err as NodeJS.ErrnoException).code ?? (err as Error).message });
      }
    }
    const addr = chooseAddress(addrs, m);
    out.dnsLookupS = (performance.now() - d0) / 1000;
    if (addr === null) {
      L('error', 'Error resolving address', { err: addrs.length ? `no ${m.preferredIpProtocol} address and ip_protocol_fallback is off` : 'unable to find ip' });
      return finish();
    }
    const text = formatAddress(addr);
    L('info', 'Resolved target address', { target: p.target.host, ip: text });
    if (!allow.allows(addr)) {
      const why = `target ${p.targetText} resolves to ${text}, outside exporter.allow`;
      this.refuse(req, 403, why);
      return { status: 403, type: TEXT, body: `${why}\n` };
    }
    out.ipProtocol = isV4(addr) ? 4 : 6;
    out.ipAddrHash = fnv1a32(addressBytes(addr));
    const v4 = isV4(addr);
    const source = m.source?.find((s) => isV4(parseAddress(s)!) === v4);
    if (m.source && source === undefined) {
      L('error', 'No source address of the target\'s family in the module', { source: m.source.join(',') });
      return finish();
    }
    L('info', 'Sending SYN (half-open)', { ip: text, port: p.target.port, ...(source ? { srcIP: source } : {}), ...(m.mark ? { mark: `0x${m.mark.toString(16)}` } : {}) });
    try {
      const v = await prober.probeOnce(addr, p.target.port, { source, mark: m.mark }, deadline);
      if (!v) {
        out.result = { state: 'filtered', reason: 'no-response', rttS: null, ttl: null };
        L('error', 'No answer before the deadline (filtered)');
      } else {
        const d = describeVerdict(v);
        out.result = { state: d.state, reason: d.reason, rttS: d.rttMs === null ? null : d.rttMs / 1000, ttl: v.ttl };
        out.success = d.state === 'open';
        L(out.success ? 'info' : 'error', d.state === 'open' ? 'SYN+ACK: open (the kernel resets it)' : `Answer: ${d.state} (${d.reason})`, { ttl: v.ttl, ...(d.rttMs !== null ? { rtt_seconds: d.rttMs / 1000 } : {}) });
      }
    } catch (err) {
      const e = err as HalfopenError;
      if (e.code === 'E_BUSY') {
        this.refuse(req, 503, e.message);
        return { status: 503, type: TEXT, body: `${e.message}\n`, headers: { 'retry-after': '1' } };
      }
      L('error', 'Error sending the SYN', { err: e.message });
    }
    return finish();
  }

  /** serve's own /metrics lines about /probe. */
  metricsText(reservedFree: { inflight: number; size: number } | null): string {
    if (!this.cfg) return '';
    let out = '# HELP halfopen_exporter_requests_total /probe answers by HTTP status (403, 429, 503: refused).\n# TYPE halfopen_exporter_requests_total counter\n';
    for (const code of [200, 400, 403, 404, 429, 503]) out += `halfopen_exporter_requests_total{code="${code}"} ${this.requests.get(code) ?? 0}\n`;
    out += '# HELP halfopen_exporter_probes_total /probe probes by verdict state ("error": no SYN went out, e.g. a name that does not resolve).\n# TYPE halfopen_exporter_probes_total counter\n';
    for (const s of ['open', 'closed', 'filtered', 'unreachable', 'error']) out += `halfopen_exporter_probes_total{state="${s}"} ${this.probes.get(s) ?? 0}\n`;
    out += `# HELP halfopen_exporter_in_flight /probe requests being answered now.\n# TYPE halfopen_exporter_in_flight gauge\nhalfopen_exporter_in_flight ${this.limiter.active}\n`;
    out += `# HELP halfopen_exporter_max_concurrent /probe requests allowed at once.\n# TYPE halfopen_exporter_max_concurrent gauge\nhalfopen_exporter_max_concurrent ${this.reserved ? Math.min(this.cfg.maxConcurrent, this.reserved) : this.cfg.maxConcurrent}\n`;
    if (reservedFree) out += `# HELP halfopen_ondemand_slots Probe-table slots kept for probes on request, by use.\n# TYPE halfopen_ondemand_slots gauge\nhalfopen_ondemand_slots{use="busy"} ${reservedFree.inflight}\nhalfopen_ondemand_slots{use="free"} ${reservedFree.size - reservedFree.inflight}\n`;
    return out;
  }
}
