// The probe engine: loads and attaches the reply matcher (XDP, or tc ingress
// when another program holds the XDP hook) and owns what outlives one run
// (the shared probe table, the senders, the route). A sweep through it is a
// SweepRun (sweep-run.ts) on a pool of sender workers; the health monitor
// programs slots one by one and sends them on the addon's own sender threads.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Piscina } from 'piscina';
import { native, NativeProgram, NativeSendThreads, SenderOptions, SendGroup, SendResult, XdpOwner } from '../addon/addon';
import { HalfopenError } from '../errors';
import * as C from '../contract.generated';
import type { ProbeResult } from '../types';
import { addressBytes, formatAddress, isV4, mustParseAddress } from '../targets/address';
import { ProbeTable, Verdict } from './probe-table';
import { createControl, sentCount } from './control';
import { MAX_SEND_GROUPS, Route, routeTo, neighbourMac, macBytes, isLocalAddress } from './route';
import { SweepRun, ProbeSource, RunHooks, RunStats } from './sweep-run';
import type { TimeoutPolicy } from './rtt-estimator';

export type { ProbeSource, Progress, RunHooks, RunStats } from './sweep-run';

export interface EngineOptions {
  /** Force the interface (else: the route to the first target). */
  interface?: string;
  /** Source addresses (else: the route's preferred source). */
  sourceIp4?: string;
  sourceIp6?: string;
  /**
   * Several sources per family (a sweep's --source-ip list): probes go out in
   * send groups, group g from sources4[g mod K4] and sources6[g mod K6], on raw
   * sockets; a family without a list uses the route's source.
   */
  sourceGroups?: { v4: string[]; v6: string[]; count: number };
  sportLo?: number;
  sportHi?: number;
  /** Packets per second over all senders; 0 = unpaced. */
  rate?: number;
  retries?: number;
  /** Wait after the last SYN of a pass for its replies, ms; with autoTimeout, the most it waits. */
  timeoutMs?: number;
  /** --timeout auto: the wait follows the RTTs measured in the run, up to timeoutMs (rtt-estimator.ts). */
  autoTimeout?: Omit<TimeoutPolicy, 'ceilingMs'> | null;
  senders?: number;
  /**
   * Health checks only (serve): no sweep runs, so no pool of sender workers;
   * sendSlots goes to `senders` native threads.
   */
  checksOnly?: boolean;
  sendPath?: 'auto' | 'raw' | 'packet';
  /** Largest probe-table window (slots). */
  capacity?: number;
  xdpMode?: 'auto' | 'native' | 'generic';
  /**
   * Where replies are matched: `xdp`, `tc` (tcx ingress), or `auto`: XDP when
   * the interface's XDP hook is free, else tc with one warning.
   */
  hook?: 'auto' | 'xdp' | 'tc';
  /** Who answers a SYN+ACK with the RST (see rstModeFor). */
  rst?: 'auto' | 'xdp' | 'kernel';
  mark?: number;
  batch?: number;
  /** Called once for a condition worth a warning (generic XDP, fallbacks). */
  warn?: (msg: string) => void;
}

/** A slot's own way out (serve's per-backend `source` and `mark`); absent fields take the run's. */
export interface SlotRoute { source?: string; mark?: number }

const DEFAULTS = {
  sportLo: 61000, sportHi: 61999, rate: 10000, retries: 1, timeoutMs: 1000,
  capacity: 1 << 20, xdpMode: 'auto' as const, rst: 'auto' as const, batch: 64, sendPath: 'raw' as const, hook: 'auto' as const,
};

/** The interface's received-packet count (this network namespace's sysfs), or null. */
function rxPackets(dev: string): number | null {
  try {
    return Number(fs.readFileSync(`/sys/class/net/${dev}/statistics/rx_packets`, 'utf8'));
  } catch {
    return null;
  }
}

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

/**
 * The verdict ring's size for a probe table of `capacity` slots: a record
 * (16 bytes: the slot number and the ring's header) for every slot. A slot
 * records one verdict per arming, and the sweep and serve read the ring
 * before they arm a slot again (each tick or pass), so that is as many as
 * can be waiting. One the ring has no room for costs only time: the verdict
 * is in the results table, read when the probe's deadline comes. The ring's
 * pages are mapped twice (libbpf maps them again for records that wrap) and
 * count twice in RSS: 8 MB for the 4 MB every table had, at 100,000 backends
 * 4 MB now.
 */
export function ringFor(capacity: number): number {
  let bytes = 64 << 10;
  while (bytes < capacity * 16 && bytes < RING_MAX) bytes *= 2;
  return bytes;
}

/** The ring's size for large tables (a 1,048,576-probe sweep window). */
const RING_MAX = 4 << 20;

let runCounter = 0;

export class Engine {
  readonly routes: { v4?: Route; v6?: Route };
  /** Where the matcher runs: the XDP hook, or tc ingress (tcx) beside another XDP program. */
  readonly hook: 'xdp' | 'tc';
  /** The XDP mode, on the XDP hook; null at tc. */
  readonly xdpMode: 'native' | 'generic' | null;
  /** The program that held the XDP hook when the engine fell back to tc (or was sent there). */
  readonly xdpOwner: XdpOwner | null = null;
  /** `auto` wanted native XDP and the interface's driver has none. */
  readonly xdpFellBack: boolean = false;
  /** Who sends the RST for a SYN+ACK: the XDP program (XDP_TX) or the prober's kernel. */
  rstFrom: 'xdp' | 'kernel' = 'kernel';
  readonly sendPath: 'raw' | 'packet';
  private readonly prog!: NativeProgram;
  private readonly table: ProbeTable;
  /** A sweep's sender workers; null for a checksOnly engine. */
  private readonly pool: Piscina | null;
  private readonly threadCount: number;
  private readonly opts: Required<Pick<EngineOptions, 'sportLo' | 'sportHi' | 'rate' | 'retries' | 'timeoutMs' | 'batch'>> & EngineOptions;
  private readonly key = crypto.randomBytes(16);
  private readonly senderInit: Omit<SenderOptions, 'control'>;
  private closed = false;
  private detached = false;
  private lastCounters: Record<string, number> = {};
  /** The interface's rx_packets when the matcher was attached at tc (see unseenRepliesWarning). */
  private rxAtAttach: number | null = null;

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
    const senders = this.threadCount = Math.max(1, opts.senders ?? os.availableParallelism());
    // Sender threads boot while the main thread looks up the route and loads and attaches XDP.
    this.pool = opts.checksOnly ? null : new Piscina({
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

      const capacity = Math.max(1, Math.min(maxProbes, opts.capacity));
      this.prog = new native.Program({ capacity, key: this.key, sportLo: opts.sportLo, sportHi: opts.sportHi, ringbufBytes: ringFor(capacity) });
      this.table = new ProbeTable(this.prog.mapBuffer('probes'), this.prog.mapBuffer('results'));
      const driver = native.driverName(route.ifindex);
      const mode = xdpModeFor(opts.xdpMode, driver);
      const got = this.prog.attach(route.ifindex, mode, opts.hook);
      this.hook = got === 'tc' ? 'tc' : 'xdp';
      this.xdpMode = got === 'tc' ? null : got;
      if (this.hook === 'tc') {
        this.rxAtAttach = rxPackets(route.dev);
        this.xdpOwner = this.prog.xdpOwner(route.ifindex);
        const o = this.xdpOwner;
        // Gone again since the attach failed: still say why this is tc.
        const who = o ? `program ${o.id}${o.name ? ` "${o.name}"` : ''}${o.name === 'halfopen_xdp' ? ', another halfopen process' : ''}` : 'by another program';
        // One line, whichever of the two reasons applies.
        if (opts.hook === 'auto')
          opts.warn?.(`the XDP hook of ${route.dev} is taken (${who}): matching replies at tc ingress (tcx) instead, RSTs from the kernel${opts.rst === 'xdp' ? ' (--rst xdp needs the XDP hook)' : ''}`);
        else if (opts.rst === 'xdp')
          opts.warn?.('--rst xdp needs the XDP hook: at tc ingress the kernel sends the RSTs');
      }
      this.xdpFellBack = this.xdpMode === 'generic' && mode === 'auto';
      if (this.xdpFellBack) opts.warn?.(`${route.dev} has no native XDP support: using generic XDP (slower)`);

      // At tc the kernel sends every RST, so `auto` sends the SYNs through the
      // stack too (raw socket): conntrack then knows the SYN, and a firewall
      // that drops conntrack-INVALID packets lets the SYN+ACK reach the
      // kernel that resets it. AF_PACKET SYNs bypass conntrack, and only the
      // XDP RST gets past such a firewall.
      const { sendPath, mac4, mac6 } = choosePath(opts.sendPath, this.hook, r4, r6);
      this.sendPath = sendPath;

      const rst = this.xdpMode === null ? C.HO_RST_KERNEL : rstModeFor(opts.rst, this.xdpMode, sendPath);
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
      void this.pool?.destroy();
      throw err;
    }
  }

  get capacity(): number { return this.table.capacity; }
  /** "native XDP", "generic XDP" or "tc ingress", for start and phase lines. */
  get hookLabel(): string { return this.xdpMode ? `${this.xdpMode} XDP` : 'tc ingress'; }
  get interface(): string { return (this.routes.v4 ?? this.routes.v6)!.dev; }
  get senders(): number { return this.threadCount; }

  /** The matcher's counters (enum ho_counter); after detach(), their last values. */
  counters(): Record<string, number> {
    if (this.detached) return { ...this.lastCounters };
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
    if (!this.pool) throw new HalfopenError('E_INTERNAL', 'this engine sends health checks only');
    const { rate, retries, timeoutMs, sportLo, sportHi, autoTimeout } = this.opts;
    const multi = this.sweepGroups();
    return new SweepRun({
      prog: this.prog, table: this.table, pool: this.pool, senders: this.senders, senderInit: multi ? { ...this.senderInit, ...multi.init } : this.senderInit,
      groupOf: multi?.init.groupOf ?? null, groups: multi?.count ?? 0,
      rate, retries, timeoutMs, autoTimeout: autoTimeout ? { ...autoTimeout, ceilingMs: timeoutMs } : null, sportLo, sportHi, runId: ++runCounter,
      rxPackets: this.hook === 'tc' ? () => rxPackets(this.interface) : null,
    }, source, onResult, hooks).run();
  }

  /** A sweep's send groups, one per source combination (EngineOptions.sourceGroups), or null. */
  private sweepGroups(): { init: { groups: SendGroup[]; groupOf: Uint16Array }; count: number } | null {
    const sg = this.opts.sourceGroups;
    if (!sg) return null;
    const mark = this.opts.mark ?? 0;
    const r4 = this.routes.v4?.src, r6 = this.routes.v6?.src;
    const groups: SendGroup[] = [];
    for (let g = 0; g < sg.count; g++) {
      const s4 = sg.v4.length ? sg.v4[g % sg.v4.length] : r4, s6 = sg.v6.length ? sg.v6[g % sg.v6.length] : r6;
      groups.push({ mark, src4: s4 ? sourceBytes(s4) : undefined, src6: s6 ? sourceBytes(s6) : undefined });
    }
    return { init: { groups, groupOf: new Uint16Array(new SharedArrayBuffer(this.table.capacity * 2)) }, count: sg.count };
  }

  // ── Health-check use (src/daemon/monitor.ts): slots programmed one by one,
  // SYNs sent for scattered slots, verdicts read as they land.

  private monitorCtl: BigInt64Array | null = null;
  private monitorRunId = ++runCounter;
  /** Send groups 1.. (see SenderOptions.groups) by "source/mark", and each slot's group. */
  private readonly groupIndex = new Map<string, number>();
  private readonly groups: SendGroup[] = [];
  private groupOf: Uint16Array | null = null;

  /**
   * Programs slot i for addr:port from source port sport and clears its
   * verdict. With a route (a source address and/or a mark other than the
   * run's), the slot's SYNs leave from that source with that SO_MARK.
   */
  setSlot(i: number, addr: bigint, port: number, sport: number, route?: SlotRoute): void {
    this.table.clear(i, i + 1);
    this.table.set(i, addr, port, sport);
    const g = this.groupFor(route);
    if (g || this.groupOf) {
      this.groupOf ??= new Uint16Array(new SharedArrayBuffer(this.table.capacity * 2));
      Atomics.store(this.groupOf, i, g);
    }
  }

  /** The send group of a route: 0 for the run's own source and mark, else one per distinct pair. */
  private groupFor(route?: SlotRoute): number {
    const mark = route?.mark ?? this.opts.mark ?? 0;
    if (!route?.source && mark === (this.opts.mark ?? 0)) return 0;
    const key = `${route?.source ?? ''}/${mark}`;
    let g = this.groupIndex.get(key);
    if (g !== undefined) return g;
    if (this.groups.length >= MAX_SEND_GROUPS)
      throw new HalfopenError('E_CONFIG', `more than ${MAX_SEND_GROUPS} distinct source/mark pairs`);
    const group: SendGroup = { mark };
    if (route?.source) {
      const a = mustParseAddress(route.source, 'source address');
      if (isV4(a)) group.src4 = sourceBytes(route.source); else group.src6 = sourceBytes(route.source);
    }
    // Raw-socket SYNs pass conntrack: the kernel's RST must close their
    // entries (an XDP RST would leave each in SYN_SENT for two minutes, one
    // per check, see rstModeFor), so `auto` moves the RSTs to the kernel.
    if (!this.groups.length && this.rstFrom === 'xdp' && this.opts.rst !== 'xdp') {
      this.prog.setRstMode(C.HO_RST_KERNEL);
      this.rstFrom = 'kernel';
    }
    this.groups.push(group);
    g = this.groups.length;
    this.groupIndex.set(key, g);
    // The sender threads learn the new group from a new run id: sendSlots
    // starts new threads with the groups, and the old ones finish their lists.
    this.monitorRunId = ++runCounter;
    return g;
  }

  clearSlot(i: number): void { this.table.clear(i, i + 1); }

  /** Whether SYNs of this family can leave: the engine found a route and a source address for it at open. */
  sendsFamily(v4: boolean): boolean { return !!(v4 ? this.routes.v4 : this.routes.v6); }

  /** Next check of an already programmed slot: new source port, cleared verdict. */
  rearmSlot(i: number, sport: number): void { this.table.rearm(i, sport); }

  verdict(i: number): Verdict | null { return this.table.verdict(i); }

  /** Whether slot i has a verdict (cheaper than verdict()). */
  answered(i: number): boolean { return this.table.state(i) !== C.HO_RESULT_PENDING; }

  /** Slots whose verdict landed since the last call. */
  pollSlots(): Uint32Array { return this.prog.poll(); }

  /** The native sender threads of sendSlots, made for monitorRunId (groups change it). */
  private sendThreads: NativeSendThreads | null = null;
  private sendThreadsRun = 0;
  /** Threads replaced for new send groups, still sending what they were given. */
  private readonly retiring = new Set<Promise<void>>();

  /**
   * Sends one SYN for each slot, on the native sender threads (a pool worker
   * per batch cost more than the batch: a structured clone each way, the
   * worker's event loop, its isolate); with waits, slot k's SYN leaves
   * waits[k] ms after `from` (Date.now() ms).
   */
  async sendSlots(slots: Uint32Array, waits?: Uint16Array, from = Date.now()): Promise<SendResult> {
    if (this.closed) throw new HalfopenError('E_INTERNAL', 'engine is closed');
    if (!this.sendThreads || this.sendThreadsRun !== this.monitorRunId) {
      this.monitorCtl ??= createControl(this.opts.rate);
      const init: SenderOptions = { ...this.senderInit, control: this.monitorCtl };
      if (this.groupOf) { init.groups = this.groups; init.groupOf = this.groupOf; }
      const next = new native.SendThreads(init, this.threadCount);
      if (this.sendThreads) this.retire(this.sendThreads);
      this.sendThreads = next;
      this.sendThreadsRun = this.monitorRunId;
    }
    const r = await this.sendThreads.sendList(slots, waits, waits ? performance.timeOrigin + performance.now() - from : 0);
    if (r.failed) this.sendFailed(r);
    return r;
  }

  private retire(t: NativeSendThreads): void {
    const p: Promise<void> = t.close().finally(() => this.retiring.delete(p));
    this.retiring.add(p);
  }

  private sendFailures = { at: 0, count: 0 };

  /**
   * SYNs the kernel refused (a `source` address gone from the host, a mark
   * without CAP_NET_ADMIN, no route): their checks fail as silent ones, so
   * say why, at most once every 10 s, with the count since the last line.
   */
  private sendFailed(r: SendResult): void {
    const f = this.sendFailures;
    f.count += r.failed;
    const now = Date.now();
    if (now - f.at < 10_000) return;
    this.opts.warn?.(`${f.count} SYNs could not be sent${r.errname ? ` (${r.errname})` : ''}: their checks count as failed`);
    f.at = now;
    f.count = 0;
  }

  /**
   * For a long-running user (serve): one warning line when, since the matcher
   * was attached at tc, checks went without a reply and at least half as many
   * packets reached the interface without reaching the matcher (the program
   * on the XDP hook dropped or redirected them). Else null. As in a sweep
   * (unseenRepliesWarning), backends that are really silent add nothing to
   * the unseen packets.
   */
  lostRepliesWarning(): string | null {
    if (this.hook !== 'tc' || !this.xdpOwner || this.rxAtAttach === null || !this.monitorCtl || this.detached) return null;
    const rx = rxPackets(this.interface);
    const c = this.counters();
    const sent = sentCount(this.monitorCtl);
    const unanswered = sent - c.candidates;
    const unseen = rx === null ? 0 : rx - this.rxAtAttach - c.packets;
    if (unanswered <= 0 || unseen <= 0 || 2 * unseen < unanswered) return null;
    const o = this.xdpOwner;
    return `${unanswered} of ${sent} checks got no reply, and ${unseen} packets reached ${this.interface} but never the tc matcher: ` +
      `the XDP program there (${o.id}${o.name ? ` "${o.name}"` : ''}) drops or redirects them, so backends may be reported down that are up`;
  }

  /**
   * Detaches and unloads the matcher now (once; later calls do nothing);
   * close() still stops the threads. The counters keep their last values for
   * whoever reads them during shutdown (a /metrics scrape).
   */
  detach(): void {
    if (this.detached) return;
    this.lastCounters = this.counters();
    this.detached = true;
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
    if (this.sendThreads) this.retire(this.sendThreads);
    this.sendThreads = null;
    const stopping = Promise.all([this.pool?.destroy(), ...this.retiring]);
    this.detach();
    await stopping;
  }
}

/**
 * One warning line when replies were probably taken before the matcher saw
 * them: the run is at tc because another program holds the XDP hook, probes
 * ended silent, and at least as many packets reached the interface without
 * reaching the matcher as there were silent probes (each would have had a
 * reply, more with retries). Else null. A dark network with the other
 * program dropping no replies leaves `unseen` near 0 and warns nothing.
 * `unseen` is an upper bound: GRO may merge packets after the interface
 * counted them, which matters for bulk TCP, not for replies to SYNs.
 */
export function unseenRepliesWarning(engine: Engine, stats: RunStats): string | null {
  const silent = stats.counts.filtered;
  if (engine.hook !== 'tc' || !engine.xdpOwner || stats.unseen === null || !silent || stats.unseen < silent || !stats.sent) return null;
  const o = engine.xdpOwner;
  return `${silent} of ${stats.probes} probes got no reply, and ${stats.unseen} packets reached ${engine.interface} but never the tc matcher: ` +
    `the XDP program there (${o.id}${o.name ? ` "${o.name}"` : ''}) drops or redirects them, so these probes may not be filtered (${stats.counters.candidates} replies got through)`;
}

/** Throws E_INTERFACE for a source address that is not this host's. */
export function checkSourceAddresses(opts: Pick<EngineOptions, 'sourceIp4' | 'sourceIp6' | 'sourceGroups'>): void {
  for (const src of [opts.sourceIp4, opts.sourceIp6, ...(opts.sourceGroups?.v4 ?? []), ...(opts.sourceGroups?.v6 ?? [])])
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

/**
 * The send path and, for AF_PACKET, the next hops' MACs: `packet` when asked,
 * or for `auto` at the XDP hook when every family's next hop is in the
 * neighbour table; else `raw`.
 */
function choosePath(wanted: EngineOptions['sendPath'], hook: 'xdp' | 'tc', r4?: Route, r6?: Route): { sendPath: 'raw' | 'packet'; mac4: string | null; mac6: string | null } {
  const route = (r4 ?? r6)!;
  let mac4: string | null = null, mac6: string | null = null;
  if (wanted === 'raw' || !route.mac || (wanted !== 'packet' && hook !== 'xdp')) return { sendPath: wanted === 'packet' ? 'packet' : 'raw', mac4, mac6 };
  mac4 = r4 ? neighbourMac(r4) : null;
  mac6 = r6 ? neighbourMac(r6) : null;
  if ((!r4 || mac4) && (!r6 || mac6)) return { sendPath: 'packet', mac4, mac6 };
  if (wanted === 'packet') throw new HalfopenError('E_INTERFACE', `AF_PACKET needs the next hop's MAC in the neighbour table (ip neigh show dev ${route.dev})`);
  return { sendPath: 'raw', mac4, mac6 };
}

/** Source address bytes for the sender's IP headers: 4 for IPv4, 16 for IPv6. */
function sourceBytes(text: string): Buffer {
  const b = Buffer.from(addressBytes(mustParseAddress(text, 'source address')));
  return isV4(mustParseAddress(text)) ? b.subarray(12) : b;
}

