// The probe engine: loads and attaches the XDP matcher and owns what outlives
// one run (the shared probe table, the sender pool, the route). A sweep through
// it is a SweepRun (sweep-run.ts); the health monitor programs slots one by one.
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Piscina } from 'piscina';
import { native, NativeProgram, SenderOptions, SendResult } from '../native/addon';
import { HalfopenError, fromRecord } from '../errors';
import * as C from '../contract.generated';
import type { ProbeResult } from '../types';
import { addressBytes, formatAddress, isV4, mustParseAddress } from '../targets/address';
import { ProbeTable, Verdict } from './probe-table';
import { createControl } from './control';
import { Route, routeTo, neighbourMac, macBytes, isLocalAddress } from './route';
import type { SendTask, SendReply } from './send-task';
import { SweepRun, ProbeSource, RunHooks, RunStats } from './sweep-run';

export type { ProbeSource, Progress, RunHooks, RunStats } from './sweep-run';

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
  /** Who answers a SYN+ACK with the RST (see rstModeFor). */
  rst?: 'auto' | 'xdp' | 'kernel';
  mark?: number;
  batch?: number;
  /** Called once for a condition worth a warning (generic XDP, fallbacks). */
  warn?: (msg: string) => void;
}

const DEFAULTS = {
  sportLo: 61000, sportHi: 61999, rate: 10000, retries: 1, timeoutMs: 1000,
  capacity: 1 << 20, xdpMode: 'auto' as const, rst: 'auto' as const, batch: 64, sendPath: 'raw' as const,
};

/**
 * The XDP mode to ask for. `auto` means generic on veth: veth's native mode
 * pays off for frames redirected in from another device's XDP, but replies the
 * peer's TCP stack sends arrive as skbs, and a native program makes veth run
 * each through its own NAPI poll and first copy it into a page-pool page
 * (skb_pp_cow_data). Generic XDP runs on the skb where it is: measured on the
 * namespace fleet, a 65,536-probe sweep takes 6 % less wall time and serve at
 * 10,000 backends 0.8 % of a core less system time. Elsewhere, native with
 * generic as the fallback.
 */
export function xdpModeFor(wanted: 'auto' | 'native' | 'generic', driver: string): 'auto' | 'native' | 'generic' {
  return wanted === 'auto' && driver === 'veth' ? 'generic' : wanted;
}

/**
 * Who answers a valid SYN+ACK with the RST, as an HO_RST_* mode. `auto` sends
 * the RST the way the SYN went:
 * - AF_PACKET SYNs bypass the prober's stack and conntrack, so to a firewall
 *   that drops conntrack-INVALID packets their SYN+ACKs are INVALID and a
 *   kernel RST never leaves. In generic mode, where XDP_TX is the device's own
 *   transmit function, the XDP program sends it (also cheaper: a 65,536-probe
 *   sweep took 380 ms against 420).
 * - Raw-socket SYNs went through the stack, conntrack tracks them, and the
 *   kernel's RST closes its entry (one sent from XDP would leave it waiting
 *   two minutes in SYN_SENT).
 * - In native mode XDP_TX is up to the driver: the kernel, unless asked.
 * `xdp` in native mode is for drivers known to transmit XDP_TX frames;
 * `kernel` always passes the SYN+ACK.
 */
export function rstModeFor(wanted: 'auto' | 'xdp' | 'kernel', xdpMode: 'native' | 'generic', sendPath: 'raw' | 'packet'): number {
  if (wanted === 'kernel' || (wanted === 'auto' && (xdpMode === 'native' || sendPath === 'raw'))) return C.HO_RST_KERNEL;
  return xdpMode === 'generic' ? C.HO_RST_XDP_SKB : C.HO_RST_XDP_FRAME;
}

let runCounter = 0;

export class Engine {
  readonly routes: { v4?: Route; v6?: Route };
  readonly xdpMode: 'native' | 'generic';
  /** `auto` wanted native XDP and the interface's driver has none. */
  readonly xdpFellBack: boolean = false;
  /** Who sends the RST for a SYN+ACK: the XDP program (XDP_TX) or the prober's kernel. */
  readonly rstFrom: 'xdp' | 'kernel' = 'kernel';
  readonly sendPath: 'raw' | 'packet';
  private readonly prog!: NativeProgram;
  private readonly table: ProbeTable;
  private readonly pool: Piscina;
  private readonly opts: Required<Pick<EngineOptions, 'sportLo' | 'sportHi' | 'rate' | 'retries' | 'timeoutMs' | 'batch'>> & EngineOptions;
  private readonly key = crypto.randomBytes(16);
  private readonly senderInit: Omit<SenderOptions, 'control'>;
  private closed = false;

  /**
   * Opens an engine for probes to `samples` (addresses that will be probed; the
   * first of each family finds the route) with room for `maxProbes` at once.
   */
  static open(samples: bigint[], maxProbes: number, options: EngineOptions = {}): Engine {
    return new Engine(samples, maxProbes, options);
  }

  private constructor(samples: bigint[], maxProbes: number, options: EngineOptions) {
    const opts = { ...DEFAULTS, ...options };
    this.opts = opts;
    const senders = Math.max(1, opts.senders ?? os.availableParallelism());
    // Sender threads boot while the main thread looks up the route and loads and attaches XDP.
    this.pool = new Piscina({
      filename: path.join(__dirname, 'send-worker.js'),
      minThreads: senders,
      maxThreads: senders,
      idleTimeout: 60_000,
    });
    // One clean-up for every failure below: the threads, and XDP once loaded.
    try {
      this.routes = lookUpRoutes(samples, opts);
      const r4 = this.routes.v4, r6 = this.routes.v6;
      const route = (r4 ?? r6)!;

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
      this.table = new ProbeTable(this.prog.mapBuffer('probes'), this.prog.mapBuffer('results'));
      const driver = native.driverName(route.ifindex);
      const mode = xdpModeFor(opts.xdpMode, driver);
      this.xdpMode = this.prog.attach(route.ifindex, mode);
      this.xdpFellBack = this.xdpMode === 'generic' && mode === 'auto';
      if (this.xdpFellBack) opts.warn?.(`${route.dev} has no native XDP support: using generic XDP (slower)`);
      const rst = rstModeFor(opts.rst, this.xdpMode, sendPath);
      this.prog.setRstMode(rst);
      this.rstFrom = rst === C.HO_RST_KERNEL ? 'kernel' : 'xdp';
      if (rst === C.HO_RST_XDP_FRAME && driver === 'veth')
        opts.warn?.(`${route.dev} is a veth in native XDP mode: its XDP_TX frames are dropped unless the peer runs NAPI (an XDP program or GRO on it), and backends stay half-open; --xdp-mode generic sends the RSTs on any veth`);
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
    } catch (err) {
      (this.prog as NativeProgram | undefined)?.close();
      void this.pool.destroy();
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
   * (or the signal aborted the run). See SweepRun.
   */
  async run(source: ProbeSource, onResult: (r: ProbeResult, seq: number) => void, hooks: RunHooks = {}): Promise<RunStats> {
    if (this.closed) throw new HalfopenError('E_INTERNAL', 'engine is closed');
    const { rate, retries, timeoutMs, sportLo, sportHi } = this.opts;
    return new SweepRun({
      prog: this.prog, table: this.table, pool: this.pool, senders: this.senders, senderInit: this.senderInit,
      rate, retries, timeoutMs, sportLo, sportHi, runId: ++runCounter,
    }, source, onResult, hooks).run();
  }

  // ── Health-check use (src/daemon/monitor.ts): slots programmed one by one,
  // SYNs sent for scattered slots, verdicts read as they land.

  private monitorCtl: BigInt64Array | null = null;
  private readonly monitorRunId = ++runCounter;

  /** Programs slot i for addr:port from source port sport and clears its verdict. */
  setSlot(i: number, addr: bigint, port: number, sport: number): void {
    this.table.clear(i, i + 1);
    this.table.set(i, addr, port, sport);
  }

  clearSlot(i: number): void { this.table.clear(i, i + 1); }

  /** Next check of an already programmed slot: new source port, cleared verdict. */
  rearmSlot(i: number, sport: number): void { this.table.rearm(i, sport); }

  verdict(i: number): Verdict | null { return this.table.verdict(i); }

  /** Whether slot i has a verdict (cheaper than verdict()). */
  answered(i: number): boolean { return this.table.state(i) !== C.HO_STATE_NONE; }

  /** Slots whose verdict landed since the last call. */
  pollSlots(): Uint32Array { return this.prog.poll(); }

  /** Sends one SYN for each slot, through the sender pool. */
  async sendSlots(slots: Uint32Array): Promise<SendResult> {
    if (this.closed) throw new HalfopenError('E_INTERNAL', 'engine is closed');
    this.monitorCtl ??= createControl(this.opts.rate);
    const task: SendTask = { runId: this.monitorRunId, lo: 0, hi: 0, onlyUnanswered: false, slots };
    let r: SendReply = await this.pool.run(task);
    if (!r.ok && 'needInit' in r) r = await this.pool.run({ ...task, init: { ...this.senderInit, control: this.monitorCtl } });
    if (!r.ok) throw 'needInit' in r ? new HalfopenError('E_INTERNAL', 'sender thread refused its init') : fromRecord(r);
    return r;
  }

  /** Detaches and unloads the XDP program now; close() still stops the threads. */
  detach(): void {
    this.prog.detach();
    this.prog.close();
  }

  /**
   * Detaches XDP and stops the sender threads. The threads are told to stop
   * first and tear down on their own cores while this thread waits in the
   * kernel for the detach (an RCU grace period or two): a 65,536-probe sweep
   * ends 18-30 ms sooner than with the two one after the other.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stopping = this.pool.destroy();
    this.detach();
    await stopping;
  }
}

/** Throws E_INTERFACE for a source address that is not this host's. */
export function checkSourceAddresses(opts: Pick<EngineOptions, 'sourceIp4' | 'sourceIp6'>): void {
  for (const src of [opts.sourceIp4, opts.sourceIp6])
    if (src !== undefined && !isLocalAddress(src))
      throw new HalfopenError('E_INTERFACE', `--source-ip ${src} is not an address of this host: give one that \`ip addr\` lists, or leave it out to use the route's`);
}

/** The route to the first target of each family; both must leave by the same interface. */
function lookUpRoutes(samples: bigint[], opts: EngineOptions): { v4?: Route; v6?: Route } {
  checkSourceAddresses(opts);
  const v4 = samples.find(isV4), v6 = samples.find((a) => !isV4(a));
  const routes = {
    v4: v4 !== undefined ? routeTo(formatAddress(v4), { dev: opts.interface, src: opts.sourceIp4 }) : undefined,
    v6: v6 !== undefined ? routeTo(formatAddress(v6), { dev: opts.interface, src: opts.sourceIp6 }) : undefined,
  };
  const r4 = routes.v4, r6 = routes.v6;
  if (!(r4 ?? r6)) throw new HalfopenError('E_EMPTY', 'no targets to probe');
  if (r4 && r6 && r4.dev !== r6.dev)
    throw new HalfopenError('E_INTERFACE', `IPv4 targets route via ${r4.dev} and IPv6 via ${r6.dev}: pass --interface`);
  return routes;
}

/** Source address bytes for the sender's IP headers: 4 for IPv4, 16 for IPv6. */
function sourceBytes(text: string): Buffer {
  const b = Buffer.from(addressBytes(mustParseAddress(text, 'source address')));
  return isV4(mustParseAddress(text)) ? b.subarray(12) : b;
}

