// The probe engine: loads and attaches the XDP matcher, fills the shared
// probe table window by window, has the sender pool send SYNs (with retries
// for the silent ones), and turns verdicts into ProbeResults as they arrive.
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Piscina } from 'piscina';
import { native, NativeProgram, SenderOptions } from '../native/addon';
import { HalfopenError, fromRecord } from '../errors';
import * as C from '../contract.generated';
import { ProbeResult, ProbeState } from '../types';
import { addressBytes, formatAddress, isV4, mustParseAddress } from '../targets/address';
import { ProbeTable, Verdict } from './probe-table';
import { createControl, abort, sentCount, failedCount } from './control';
import { Route, routeTo, neighbourMac, macBytes } from './route';
import type { SendTask, SendReply } from './send-task';

export interface ProbeSource {
  readonly size: number;
  at(i: number): { addr: bigint; port: number };
}

export interface EngineOptions {
  /** Force the interface (else: the route to the first target). */
  interface?: string;
  /** Source addresses (else: the route's preferred source). */
  sourceIp4?: string;
  sourceIp6?: string;
  sportLo?: number;
  sportHi?: number;
  /** Packets per second over all senders; 0 = unpaced. */
  rate?: number;
  retries?: number;
  /** Wait after the last SYN of a pass for its replies, ms. */
  timeoutMs?: number;
  senders?: number;
  sendPath?: 'auto' | 'raw' | 'packet';
  /** Largest probe-table window (slots). */
  capacity?: number;
  xdpMode?: 'auto' | 'native' | 'generic';
  mark?: number;
  batch?: number;
  /** Called once for a condition worth a warning (generic XDP, fallbacks). */
  warn?: (msg: string) => void;
}

export interface Progress { total: number; sent: number; answered: number; elapsedS: number }

export interface RunHooks {
  signal?: AbortSignal;
  /** Called about every 200 ms while the run is under way. */
  onProgress?: (p: Progress) => void;
}

export interface RunStats {
  probes: number;
  sent: number;
  failed: number;
  retried: number;
  counts: Record<ProbeState, number>;
  duplicates: number;
  invalid: number;
  elapsedS: number;
  interrupted: boolean;
  sendErrors: string[];
  counters: Record<string, number>;
}

const DEFAULTS = {
  sportLo: 61000, sportHi: 61999, rate: 10000, retries: 1, timeoutMs: 1000,
  capacity: 1 << 20, xdpMode: 'auto' as const, batch: 64, sendPath: 'raw' as const,
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let runCounter = 0;

export class Engine {
  readonly routes: { v4?: Route; v6?: Route };
  readonly xdpMode: 'native' | 'generic';
  readonly sendPath: 'raw' | 'packet';
  private readonly prog: NativeProgram;
  private readonly table: ProbeTable;
  private readonly pool: Piscina;
  private readonly opts: Required<Pick<EngineOptions, 'sportLo' | 'sportHi' | 'rate' | 'retries' | 'timeoutMs' | 'batch'>> & EngineOptions;
  private readonly key = crypto.randomBytes(16);
  private readonly senderInit: Omit<SenderOptions, 'control'>;
  private closed = false;

  /**
   * Opens an engine for probes to `samples` (one address per family that will
   * be probed, used to find the route) with room for `maxProbes` at once.
   */
  static open(samples: bigint[], maxProbes: number, options: EngineOptions = {}): Engine {
    return new Engine(samples, maxProbes, options);
  }

  private constructor(samples: bigint[], maxProbes: number, options: EngineOptions) {
    const opts = { ...DEFAULTS, ...options };
    this.opts = opts;
    const senders = Math.max(1, opts.senders ?? os.availableParallelism());
    const v4 = samples.find(isV4), v6 = samples.find((a) => !isV4(a));
    this.routes = {
      v4: v4 !== undefined ? routeTo(formatAddress(v4), { dev: opts.interface, src: opts.sourceIp4 }) : undefined,
      v6: v6 !== undefined ? routeTo(formatAddress(v6), { dev: opts.interface, src: opts.sourceIp6 }) : undefined,
    };
    const r4 = this.routes.v4, r6 = this.routes.v6;
    const route = r4 ?? r6;
    if (!route) throw new HalfopenError('E_EMPTY', 'no targets to probe');
    if (r4 && r6 && r4.dev !== r6.dev)
      throw new HalfopenError('E_INTERFACE', `IPv4 targets route via ${r4.dev} and IPv6 via ${r6.dev}: pass --interface`);

    let sendPath: 'raw' | 'packet' = opts.sendPath === 'packet' ? 'packet' : 'raw';
    let mac4: string | null = null, mac6: string | null = null;
    if (opts.sendPath !== 'raw' && route.mac) {
      mac4 = r4 ? neighbourMac(r4) : null;
      mac6 = r6 ? neighbourMac(r6) : null;
      const complete = (!r4 || mac4) && (!r6 || mac6);
      if (complete) sendPath = 'packet';
      else if (opts.sendPath === 'packet')
        throw new HalfopenError('E_INTERFACE', `AF_PACKET needs the next hop's MAC in the neighbour table (ip neigh show dev ${route.dev})`);
    }
    this.sendPath = sendPath;

    const capacity = Math.max(1, Math.min(maxProbes, opts.capacity));
    this.prog = new native.Program({ capacity, key: this.key, sportLo: opts.sportLo, sportHi: opts.sportHi });
    try {
      this.table = new ProbeTable(this.prog.mapBuffer('probes'), this.prog.mapBuffer('results'));
      this.xdpMode = this.prog.attach(route.ifindex, opts.xdpMode);
      if (this.xdpMode === 'generic' && opts.xdpMode === 'auto')
        opts.warn?.(`${route.dev} has no native XDP support: using generic XDP (slower)`);
      const fds = this.prog.fds();
      this.senderInit = {
        kind: sendPath,
        probesFd: fds.probes,
        resultsFd: fds.results,
        capacity,
        key: this.key,
        src4: r4 ? sourceBytes(r4.src) : undefined,
        src6: r6 ? sourceBytes(r6.src) : undefined,
        ifindex: sendPath === 'packet' || opts.interface ? route.ifindex : undefined,
        srcMac: route.mac ? macBytes(route.mac) : undefined,
        dstMac4: mac4 ? macBytes(mac4) : undefined,
        dstMac6: mac6 ? macBytes(mac6) : undefined,
        mark: opts.mark,
        batch: opts.batch,
      };
      this.pool = new Piscina({
        filename: path.join(__dirname, 'send-worker.js'),
        minThreads: senders,
        maxThreads: senders,
        idleTimeout: 60_000,
      });
    } catch (err) {
      this.prog.close();
      throw err;
    }
  }

  get capacity(): number { return this.table.capacity; }
  get interface(): string { return (this.routes.v4 ?? this.routes.v6)!.dev; }
  get senders(): number { return this.pool.options.maxThreads; }

  counters(): Record<string, number> {
    const raw = this.prog.counters();
    return Object.fromEntries(C.COUNTER_NAMES.map((n, i) => [n, raw[i]]));
  }

  /**
   * Probes every entry of `source` and calls `onResult` once per probe with
   * its final verdict, as verdicts arrive. Resolves when every probe has one
   * (or the signal aborted the run).
   */
  async run(source: ProbeSource, onResult: (r: ProbeResult) => void, hooks: RunHooks = {}): Promise<RunStats> {
    const { signal, onProgress } = hooks;
    if (this.closed) throw new HalfopenError('E_INTERNAL', 'engine is closed');
    const { retries, timeoutMs, sportLo, sportHi } = this.opts;
    const runId = ++runCounter;
    const ctl = createControl(this.opts.rate);
    const onAbort = () => abort(ctl);
    signal?.addEventListener('abort', onAbort, { once: true });
    const before = this.prog.counters();
    const start = process.hrtime.bigint();
    const counts: Record<ProbeState, number> = { open: 0, closed: 0, filtered: 0, unreachable: 0 };
    const sendErrors = new Set<string>();
    let retried = 0;
    let answeredTotal = 0;
    let lastProgress = 0;
    const progress = (): void => {
      const now = Date.now();
      if (!onProgress || now - lastProgress < 200) return;
      lastProgress = now;
      onProgress({ total: source.size, sent: sentCount(ctl), answered: answeredTotal, elapsedS: Number(process.hrtime.bigint() - start) / 1e9 });
    };
    const ports = sportHi - sportLo + 1;
    const cap = this.table.capacity;
    const emitted = new Uint8Array(cap);
    const table = this.table;
    this.prog.poll(); // drop events of earlier runs

    for (let base = 0; base < source.size && !signal?.aborted; base += cap) {
      const w = Math.min(cap, source.size - base);
      table.clear(0, cap);
      emitted.fill(0);
      for (let i = 0; i < w; i++) {
        const p = source.at(base + i);
        table.set(i, p.addr, p.port, sportLo + ((base + i) % ports));
      }
      let answered = 0;
      const emit = (i: number, ts: string): void => {
        if (emitted[i]) return;
        const v = table.verdict(i);
        if (!v) return;
        emitted[i] = 1;
        answered++;
        answeredTotal++;
        const r = toResult(table.ip(i), table.port(i), v, ts);
        counts[r.state]++;
        onResult(r);
      };
      const drain = (): void => {
        const idx = this.prog.poll();
        if (!idx.length) return;
        const ts = new Date().toISOString();
        for (const i of idx) if (i < w) emit(i, ts);
        progress();
      };

      for (let pass = 0; pass <= retries && answered < w && !signal?.aborted; pass++) {
        const sentBefore = sentCount(ctl);
        const chunk = Math.ceil(w / this.senders);
        const tasks: Promise<SendReply>[] = [];
        for (let lo = 0; lo < w; lo += chunk) {
          const task: SendTask = { runId, init: { ...this.senderInit, control: ctl }, lo, hi: Math.min(w, lo + chunk), onlyUnanswered: pass > 0 };
          tasks.push(this.pool.run(task));
        }
        let pending = tasks.length;
        const replies: SendReply[] = [];
        tasks.forEach((t) => t.then((r) => { replies.push(r); pending--; }, (e) => { replies.push({ ok: false, code: 'E_SEND', message: String(e) }); pending--; }));
        while (pending > 0) {
          await sleep(2);
          drain();
        }
        for (const r of replies) {
          if (!r.ok) throw fromRecord(r);
          if (r.failed) sendErrors.add(r.errname ?? `errno ${r.errno}`);
        }
        if (pass > 0) retried += sentCount(ctl) - sentBefore;
        const deadline = Date.now() + timeoutMs;
        while (answered < w && Date.now() < deadline && !signal?.aborted) {
          await sleep(2);
          drain();
        }
      }
      // Events the ring buffer could not hold are still in the table.
      const ts = new Date().toISOString();
      drain();
      for (let i = 0; i < w; i++) emit(i, ts);
      if (!signal?.aborted) {
        for (let i = 0; i < w; i++) {
          if (emitted[i]) continue;
          emitted[i] = 1;
          counts.filtered++;
          onResult({ ip: table.ip(i), port: table.port(i), state: 'filtered', reason: 'no-response', rtt_ms: null, ttl: null, ts });
        }
      }
    }
    signal?.removeEventListener('abort', onAbort);
    const after = this.prog.counters();
    const delta = Object.fromEntries(C.COUNTER_NAMES.map((n, i) => [n, after[i] - before[i]]));
    return {
      probes: source.size,
      sent: sentCount(ctl),
      failed: failedCount(ctl),
      retried,
      counts,
      duplicates: delta.duplicate,
      invalid: delta.bad_cookie + delta.bad_match + delta.malformed,
      elapsedS: Number(process.hrtime.bigint() - start) / 1e9,
      interrupted: !!signal?.aborted,
      sendErrors: [...sendErrors],
      counters: delta,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.prog.detach();
    this.prog.close();
    await this.pool.destroy();
  }
}

/** Source address bytes for the sender's IP headers: 4 for IPv4, 16 for IPv6. */
function sourceBytes(text: string): Buffer {
  const b = Buffer.from(addressBytes(mustParseAddress(text, 'source address')));
  return isV4(mustParseAddress(text)) ? b.subarray(12) : b;
}

function toResult(ip: string, port: number, v: Verdict, ts: string): ProbeResult {
  const rtt = v.rttMs === null ? null : Math.round(v.rttMs * 1000) / 1000;
  // Literal objects with one shape: this runs once per reply.
  switch (v.state) {
    case C.HO_STATE_OPEN: return { ip, port, state: 'open', reason: 'syn-ack', rtt_ms: rtt, ttl: v.ttl, ts };
    case C.HO_STATE_CLOSED: return { ip, port, state: 'closed', reason: 'rst', rtt_ms: rtt, ttl: v.ttl, ts };
    default: return { ip, port, state: 'unreachable', reason: `icmp-${v.icmpType}-${v.icmpCode}`, rtt_ms: rtt, ttl: v.ttl, ts };
  }
}
