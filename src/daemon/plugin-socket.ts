// The plugin socket (`listen.plugin`): check_tcp_half_open --via asks serve
// instead of sending its own SYNs, and prints what a live check would, from
// serve's current state (rise/fall applied, never from a stale check). The
// protocol is plugin-protocol.ts; this file decides the answers.
//
// Learning (`plugin.learn`): a HOST PORT serve does not check becomes a
// backend with the defaults' timings, checked at once; the request is
// answered after that first check (which alone decides its health), or at
// its deadline. That is probing on request, so it takes only targets inside
// `plugin.allow`, at most `plugin.max_learned` of them, and a learned backend
// nobody asks about for `plugin.forget_after` is dropped again.
import dns from 'node:dns';
import fs from 'node:fs';
import net from 'node:net';
import { HalfopenError } from '../errors';
import { formatAddress, isV4, parseAddress } from '../targets/address';
import { AllowList } from './allow-list';
import type { BackendConfig } from './config';
import { Backend, Monitor, depthFor } from './monitor';
import type { PluginConfig } from './plugin-config';
import {
  MAX_REQUEST, PluginRequest, formatError, formatLive, formatRefused, formatVerdict, formatWait, parseRequest,
} from './plugin-protocol';

/** Answered this much before the request's deadline at the latest: the line must reach the plugin in time. */
const DEADLINE_MARGIN_MS = 10;
/** While a learned backend waits for its first check the scheduler is stepped this often, so the answer is not a tick late. */
const LEARN_STEP_MS = 5;
/** How often name entries of plugin.allow are looked up again. */
const ALLOW_REFRESH_MS = 60_000;
/** A connection that sends no request line for this long is closed. */
const IDLE_MS = 5000;

const lookupAll = async (name: string): Promise<bigint[]> =>
  (await dns.promises.lookup(name, { all: true })).map((a) => parseAddress(a.address)).filter((a): a is bigint => a !== null);

/** The gid of group `halfopen`, or null when there is none (then the socket is root's only). */
function halfopenGid(): number | null {
  try {
    for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === 'halfopen' && /^\d+$/.test(f[2] ?? '')) return Number(f[2]);
    }
  } catch { /* no /etc/group */ }
  return null;
}

interface Waiter { resolve: (line: string) => void }

export class PluginSocket {
  readonly server: net.Server;
  private cfg: PluginConfig;
  private allow: AllowList;
  /** Learned backends by name: when a request last asked for each. */
  private readonly learned = new Map<string, number>();
  private readonly waiting = new Map<Backend, Waiter[]>();
  private stepper: NodeJS.Timeout | null = null;
  private forgetter: NodeJS.Timeout | null = null;
  private allowTimer: NodeJS.Timeout | null = null;
  private watched: Monitor | null = null;
  /** Requests answered, by kind, for the log and tests. */
  readonly counts = { verdict: 0, live: 0, refused: 0, error: 0, learned: 0, forgotten: 0 };

  constructor(cfg: PluginConfig, private readonly getMonitor: () => Monitor | null, private readonly log: (m: string) => void) {
    this.cfg = cfg;
    this.allow = AllowList.parse(cfg.allow, 'plugin.allow');
    this.server = net.createServer((sock) => this.connection(sock));
  }

  /** Binds the socket: mode 0660, group halfopen when it exists. A stale socket file of a dead serve is replaced. */
  async listen(): Promise<void> {
    const file = this.cfg.socket!;
    const fail = (why: string) => new HalfopenError('E_CONFIG', `cannot listen for the plugin on ${file}: ${why}`);
    let st: fs.Stats | null = null;
    try { st = fs.lstatSync(file); } catch { /* absent: fine */ }
    if (st) {
      if (!st.isSocket()) throw fail('a file that is not a socket is in the way');
      if (await answers(file)) throw fail('another process listens there');
      fs.unlinkSync(file);
    }
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (e) => reject(fail((e as NodeJS.ErrnoException).code ?? String(e))));
      // The bind happens within listen(): no moment in which others may connect.
      const old = process.umask(0o117);
      try {
        this.server.listen(file, () => resolve());
      } finally {
        process.umask(old);
      }
    });
    fs.chmodSync(file, 0o660);
    const gid = halfopenGid();
    if (gid !== null) fs.chownSync(file, -1, gid);
    if (this.cfg.learn) this.startTimers();
  }

  private startTimers(): void {
    if (!this.forgetter) {
      this.forgetter = setInterval(() => this.forgetIdle(), Math.max(1000, Math.min(30_000, this.cfg.forgetAfter / 4)));
      this.forgetter.unref();
    }
    if (this.allow.names.length && !this.allowTimer) {
      void this.allow.refresh(lookupAll);
      this.allowTimer = setInterval(() => void this.allow.refresh(lookupAll), ALLOW_REFRESH_MS);
      this.allowTimer.unref();
    }
  }

  private stopTimers(): void {
    for (const t of [this.forgetter, this.allowTimer, this.stepper]) if (t) clearInterval(t);
    this.forgetter = this.allowTimer = this.stepper = null;
  }

  /** Slots to keep free for learning: what max_learned may still take. */
  reserve(cfg: PluginConfig = this.cfg): number {
    if (!cfg.learn) return 0;
    return Math.max(0, cfg.maxLearned - this.learned.size) * depthFor(this.learnedConfig('x', 1, cfg));
  }

  /** A reload's new plugin settings. The socket path itself changes at restart only. */
  reconfigure(next: PluginConfig): void {
    if (next.socket !== this.cfg.socket) this.log('warning: listen.plugin takes effect at restart only');
    const socket = this.cfg.socket;
    this.cfg = { ...next, socket };
    this.allow = AllowList.parse(next.allow, 'plugin.allow');
    for (const t of [this.allowTimer, this.forgetter]) if (t) clearInterval(t);
    this.allowTimer = this.forgetter = null;
    if (next.learn) this.startTimers();
    const m = this.getMonitor();
    // Learned backends the new allow list no longer takes are forgotten now (after names resolve, for name entries).
    const prune = () => {
      for (const name of [...this.learned.keys()]) {
        const b = m?.get(name);
        if (!next.learn || !b || b.addr === null || !this.allow.allows(b.addr)) this.drop(name);
      }
    };
    if (this.allow.names.length) void this.allow.refresh(lookupAll).then(prune);
    else prune();
  }

  /**
   * The backend list for a reload, with the learned backends still wanted:
   * a learned one that the config now names (same name or address:port) is
   * the config's from now on.
   */
  withLearned<T extends { cfg: BackendConfig; addr: bigint | null }>(list: T[]): Array<T | { cfg: BackendConfig; addr: bigint | null; unresolved: string; ttlMs: number }> {
    const m = this.getMonitor();
    if (!m || !this.learned.size) return list;
    const names = new Set(list.map((x) => x.cfg.name));
    const targets = new Set(list.filter((x) => x.addr !== null).map((x) => `${x.addr}:${x.cfg.port}`));
    const out: Array<T | { cfg: BackendConfig; addr: bigint | null; unresolved: string; ttlMs: number }> = [...list];
    for (const name of [...this.learned.keys()]) {
      const b = m.get(name);
      if (!b || b.addr === null || names.has(name) || targets.has(`${b.addr}:${b.cfg.port}`)) {
        this.learned.delete(name);
        continue;
      }
      out.push({ cfg: this.learnedConfig(b.address, b.cfg.port), addr: b.addr, unresolved: '', ttlMs: Infinity });
    }
    return out;
  }

  get learnedCount(): number { return this.learned.size; }

  async close(): Promise<void> {
    this.stopTimers();
    for (const list of this.waiting.values()) for (const w of list) w.resolve(formatLive('halfopen serve is shutting down'));
    this.waiting.clear();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private learnedConfig(address: string, port: number, cfg: PluginConfig = this.cfg): BackendConfig {
    const name = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
    return { name, host: address, port, labels: {}, ...cfg.timings };
  }

  private connection(sock: net.Socket): void {
    let buf = '';
    let asked = false;
    sock.setTimeout(IDLE_MS, () => sock.destroy());
    sock.on('error', () => sock.destroy());
    sock.on('data', (d) => {
      if (asked) return;
      buf += d.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length >= MAX_REQUEST) { asked = true; this.counts.error++; sock.end(formatError(`request longer than ${MAX_REQUEST} bytes`)); }
        return;
      }
      asked = true;
      const req = parseRequest(buf.slice(0, nl));
      if (typeof req === 'string') {
        this.counts.error++;
        sock.end(formatError(req));
        return;
      }
      sock.setTimeout(req.deadlineMs + IDLE_MS);
      const answer = this.answer(req, (line) => { if (!sock.destroyed) sock.write(line); });
      if (typeof answer === 'string') sock.end(answer);
      else void answer.then((line) => { if (!sock.destroyed) sock.end(line); });
    });
  }

  /** The answer to one request: a line now, or (learning) a line later, with `early` sent meanwhile. */
  answer(req: PluginRequest, early: (line: string) => void, now = Date.now()): string | Promise<string> {
    const m = this.getMonitor();
    if (!m) return this.count('live', formatLive('halfopen serve is starting'));
    const lit = parseAddress(req.host.replace(/^\[(.*)\]$/, '$1'));
    const b = lit !== null ? m.find(`${formatAddress(lit)}:${req.port}`) : this.byName(m, req.host, req.port);
    if (b) {
      if (this.learned.has(b.cfg.name)) this.learned.set(b.cfg.name, now);
      if (b.firstDecides) return this.awaitFirst(m, b, req, early);
      return this.verdict(b, req, now);
    }
    if (!this.cfg.learn) return this.count('live', formatLive(`halfopen serve does not check ${req.host} port ${req.port}`));
    return this.learn(m, req, lit, early, now);
  }

  private count(kind: 'verdict' | 'live' | 'refused' | 'error', line: string): string {
    this.counts[kind]++;
    return line;
  }

  /** A configured backend by its host name (a backend's default name is host:port too, found by Monitor.find). */
  private byName(m: Monitor, host: string, port: number): Backend | undefined {
    const h = host.replace(/\.$/, '').toLowerCase();
    const named = m.find(`${host}:${port}`);
    if (named) return named;
    for (const b of m.list()) if (b.cfg.port === port && b.cfg.host.toLowerCase() === h) return b;
    return undefined;
  }

  /** The line for a backend serve knows, from its state now. */
  private verdict(b: Backend, req: PluginRequest, now: number): string {
    const name = b.cfg.name;
    if (b.admin === 'maint') return this.count('verdict', formatVerdict({ state: 'maint', reason: 'maint', ip: b.address, rttUs: -1, ttl: -1 }));
    if (b.addr === null) return this.count('live', formatLive(`backend ${name} has no address (${b.unresolved || 'unresolved'})`));
    if (req.family && (isV4(b.addr) ? 4 : 6) !== req.family) return this.count('live', formatLive(`backend ${name} is checked over IPv${isV4(b.addr) ? 4 : 6}, not -${req.family}`));
    if (b.checks === 0) return this.count('live', formatLive(`backend ${name} has not been checked yet`));
    if (b.isStale(now)) return this.count('live', formatLive(`no fresh check of backend ${name}: the latest completed ${b.checkAge(now)} ms ago`));
    if (b.effectiveState(now) === 'up') {
      return this.count('verdict', formatVerdict({ state: 'open', reason: 'syn-ack', ip: b.address, rttUs: toUs(b.okRttMs), ttl: b.okTtl }));
    }
    const s = b.failState;
    if (s === null) return this.count('verdict', formatVerdict({ state: 'pending', reason: 'rise', ip: b.address, rttUs: -1, ttl: -1 }));
    // serve's verdicts do not record which router sent an ICMP error: the line names it, so that one is checked live.
    if (s === 'unreachable') return this.count('live', formatLive(`backend ${name} is unreachable (${b.failReason}); serve does not record the ICMP sender`));
    return this.count('verdict', formatVerdict({ state: s, reason: b.failReason, ip: b.address, rttUs: toUs(b.failRttMs), ttl: b.failTtl }));
  }

  private async learn(m: Monitor, req: PluginRequest, lit: bigint | null, early: (line: string) => void, now: number): Promise<string> {
    const what = `${req.host} port ${req.port}`;
    let addr = lit;
    if (addr === null) {
      try {
        const all = (await dns.promises.lookup(req.host, { family: req.family || undefined, all: true }));
        addr = all.length ? parseAddress(all[0].address) : null;
      } catch (err) {
        return this.count('live', formatLive(`cannot resolve "${req.host}": ${(err as NodeJS.ErrnoException).code ?? err}`));
      }
      if (addr === null) return this.count('live', formatLive(`cannot resolve "${req.host}"`));
      const known = m.find(`${formatAddress(addr)}:${req.port}`);
      if (known) return known.firstDecides ? this.awaitFirst(m, known, req, early) : this.verdict(known, req, now);
    }
    if (!this.allow.allows(addr)) return this.count('refused', formatRefused(`not learning ${what}: ${formatAddress(addr)} is not inside plugin.allow`));
    if (this.learned.size >= this.cfg.maxLearned) return this.count('refused', formatRefused(`not learning ${what}: plugin.max_learned (${this.cfg.maxLearned}) backends are learned already`));
    const cfg = this.learnedConfig(formatAddress(addr), req.port);
    let b: Backend;
    try {
      b = m.learn(cfg, addr, now);
    } catch (err) {
      return this.count('refused', formatRefused(`not learning ${what}: ${(err as Error).message}`));
    }
    this.learned.set(cfg.name, now);
    this.counts.learned++;
    this.startTimers();
    return this.awaitFirst(m, b, req, early);
  }

  /** Waits for b's first check (or the request's deadline), then answers from it. */
  private awaitFirst(m: Monitor, b: Backend, req: PluginRequest, early: (line: string) => void): Promise<string> {
    const ms = Math.max(1, req.deadlineMs - DEADLINE_MARGIN_MS);
    early(formatWait(ms));
    if (this.watched !== m) {
      this.watched = m;
      m.on('first-check', (x: Backend) => this.firstCheck(x));
    }
    return new Promise<string>((resolve) => {
      const w: Waiter = { resolve };
      const list = this.waiting.get(b) ?? [];
      list.push(w);
      this.waiting.set(b, list);
      this.step(m);
      const timer = setTimeout(() => {
        const l = this.waiting.get(b);
        const i = l ? l.indexOf(w) : -1;
        if (i < 0) return;
        l!.splice(i, 1);
        if (!l!.length) this.waiting.delete(b);
        // No answer within the deadline: what a live check with this deadline would have seen.
        resolve(this.count('verdict', formatVerdict({ state: 'filtered', reason: 'no-response', ip: b.address, rttUs: -1, ttl: -1 })));
      }, ms);
      w.resolve = (line) => { clearTimeout(timer); resolve(line); };
    }).finally(() => { if (!this.waiting.size && this.stepper) { clearInterval(this.stepper); this.stepper = null; } });
  }

  /** Steps the scheduler while learned backends wait, so their SYN leaves and their verdict lands without a tick's delay. */
  private step(m: Monitor): void {
    if (m.running) m.tick();
    if (this.stepper) return;
    this.stepper = setInterval(() => { if (m.running) m.tick(); }, LEARN_STEP_MS);
    this.stepper.unref();
  }

  private firstCheck(b: Backend): void {
    const list = this.waiting.get(b);
    if (!list) return;
    this.waiting.delete(b);
    const req: PluginRequest = { host: b.address, port: b.cfg.port, deadlineMs: 1, family: 0 };
    const line = this.verdict(b, req, b.last?.ts ?? Date.now()); // as of the check that just completed
    for (const w of list) w.resolve(line);
  }

  private forgetIdle(now = Date.now()): void {
    for (const [name, at] of this.learned) if (now - at > this.cfg.forgetAfter) this.drop(name);
  }

  private drop(name: string): void {
    this.learned.delete(name);
    const b = this.getMonitor()?.get(name);
    if (b) {
      const list = this.waiting.get(b);
      this.waiting.delete(b);
      for (const w of list ?? []) w.resolve(this.count('live', formatLive(`backend ${name} was forgotten`)));
    }
    if (this.getMonitor()?.forget(name)) this.counts.forgotten++;
  }
}

const toUs = (ms: number) => (ms >= 0 ? Math.round(ms * 1000) : -1);

/** Whether something accepts connections on the unix socket `file`. */
function answers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(file);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
