// Probes on request ("ask one probe now"): serve's /probe, and the plugin
// socket's learning of unknown backends. They use the monitor's probe table,
// XDP matcher and sender threads, but slots of their own at the top of the
// table, so a burst of requests never takes a slot a scheduled check needs.
//
// Each probe programs a free slot for its target with a source port no other
// probe of the same target has in flight, sends one SYN (resent like
// connect()'s retransmits, doubling the wait each time: first after 1 s, or
// after a third of the time left when the deadline is nearer, at least
// 200 ms), and settles on the first verdict that lands or on the
// deadline (no reply: null). SYNs asked for in the same turn of the event
// loop go out in one batch, and at most one batch is with the sender at a
// time: on-demand sends cost the scheduled checks at most one small batch
// of waiting. Verdicts are read from the table itself every POLL_MS while
// probes are in flight; the monitor's event-ring poll skips these slots.
import { HalfopenError } from '../errors';
import { isV4 } from '../targets/address';
import type { Verdict } from '../engine/probe-table';

/** What on-demand probes need of the probe table: the monitor's ProbeSlots, in part. */
export interface OnDemandSlots {
  setSlot(i: number, addr: bigint, port: number, sport: number, route?: { source?: string; mark?: number }): void;
  clearSlot(i: number): void;
  answered(i: number): boolean;
  verdict(i: number): Verdict | null;
  sendSlots(slots: Uint32Array): Promise<unknown>;
  /** Whether SYNs of this family can leave (the engine found a route and a source for it). */
  sendsFamily?(v4: boolean): boolean;
}

/** How one on-demand probe leaves: a source address (of the target's family) and SO_MARK. */
export interface ProbeOptions { source?: string; mark?: number }

/**
 * Ask one probe now: resolves with the verdict of a fresh SYN to addr:port,
 * or null when nothing answered by `deadline` (ms, Date.now() clock).
 * Rejects with E_BUSY when no on-demand slot is free, E_INTERFACE when SYNs
 * of the target's family cannot leave. The one interface /probe and the
 * plugin socket use (Monitor.probeOnce).
 */
export interface ProbeOnce {
  probeOnce(addr: bigint, port: number, opts: ProbeOptions, deadline: number): Promise<Verdict | null>;
}

/** How often in-flight probes' slots are read for a verdict, ms. */
export const POLL_MS = 1;
/** The first SYN retransmit, ms (connect()'s initial RTO); nearer deadlines resend sooner, never before MIN_RETRANSMIT_MS. */
const RETRANSMIT_MS = 1000;
const MIN_RETRANSMIT_MS = 200;

interface Pending {
  slot: number;
  key: string;
  deadline: number;
  nextResend: number;
  wait: number;
  resolve: (v: Verdict | null) => void;
  reject: (e: Error) => void;
}

export class OnDemandProbes implements ProbeOnce {
  private free: number[] = [];
  private readonly pending = new Map<number, Pending>();
  /** Source ports in flight per "addr:port": two probes of one target never share a 4-tuple. */
  private readonly inUse = new Map<string, Set<number>>();
  private queued: number[] = [];
  private sending = false;
  private flushScheduled = false;
  private timer: NodeJS.Timeout | null = null;
  private turn = 0;
  /** Probes asked, settled with a verdict, settled without one (deadline), refused for want of a slot. */
  readonly stats = { asked: 0, answered: 0, unanswered: 0, busy: 0, resent: 0 };

  constructor(private slots: OnDemandSlots, private first: number, readonly size: number,
    private readonly sportLo: number, private readonly sportRange: number) {
    this.reset();
  }

  private reset(): void {
    this.free = [];
    for (let i = this.first + this.size - 1; i >= this.first; i--) this.free.push(i);
  }

  get inflight(): number { return this.pending.size; }
  get available(): number { return this.free.length; }

  probeOnce(addr: bigint, port: number, opts: ProbeOptions, deadline: number): Promise<Verdict | null> {
    this.stats.asked++;
    const v4 = isV4(addr);
    if (this.slots.sendsFamily && !this.slots.sendsFamily(v4))
      return Promise.reject(new HalfopenError('E_INTERFACE', `no ${v4 ? 'IPv4' : 'IPv6'} route or source address on the probing interface`));
    const slot = this.free.pop();
    if (slot === undefined) {
      this.stats.busy++;
      return Promise.reject(new HalfopenError('E_BUSY', `all ${this.size} on-demand probe slots are in use`));
    }
    const key = `${addr}:${port}`;
    let used = this.inUse.get(key);
    if (!used) this.inUse.set(key, used = new Set());
    let sport = 0;
    // At most `size` probes are in flight, so a port free for this target is found within size + 1 tries.
    for (let k = 0; k <= this.sportRange; k++) {
      sport = this.sportLo + (this.turn++ % this.sportRange);
      if (!used.has(sport)) break;
    }
    used.add(sport);
    try {
      this.slots.setSlot(slot, addr, port, sport, opts);
    } catch (err) {
      this.release(slot, key, sport);
      return Promise.reject(err);
    }
    const now = Date.now();
    const wait = Math.max(MIN_RETRANSMIT_MS, Math.min(RETRANSMIT_MS, (deadline - now) / 3));
    return new Promise((resolve, reject) => {
      this.pending.set(slot, { slot, key: `${key}:${sport}`, deadline, nextResend: now + wait, wait, resolve, reject });
      this.send(slot);
      if (!this.timer) this.timer = setInterval(() => this.poll(), POLL_MS);
    });
  }

  private release(slot: number, key: string, sport: number): void {
    const used = this.inUse.get(key);
    used?.delete(sport);
    if (used && !used.size) this.inUse.delete(key);
    this.free.push(slot);
  }

  private send(slot: number): void {
    this.queued.push(slot);
    if (this.sending || this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => { this.flushScheduled = false; this.flush(); });
  }

  private flush(): void {
    if (this.sending || !this.queued.length) return;
    const batch = Uint32Array.from(this.queued.filter((s) => this.pending.has(s)));
    this.queued = [];
    if (!batch.length) return;
    this.sending = true;
    this.slots.sendSlots(batch).then(() => {
      this.sending = false;
      this.poll();
      this.flush();
    }, (err: Error) => {
      this.sending = false;
      for (const s of batch) {
        const p = this.pending.get(s);
        if (p) this.settle(p, null, err);
      }
      this.flush();
    });
  }

  /** Settles what has landed or run out of time, resends what is due. */
  poll(now = Date.now()): void {
    for (const p of this.pending.values()) {
      if (this.slots.answered(p.slot)) this.settle(p, this.slots.verdict(p.slot));
      else if (now >= p.deadline) this.settle(p, null);
      else if (now >= p.nextResend && !this.queued.includes(p.slot)) {
        p.wait *= 2;
        p.nextResend = now + p.wait;
        this.stats.resent++;
        this.send(p.slot);
      }
    }
    if (!this.pending.size && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private settle(p: Pending, v: Verdict | null, err?: Error): void {
    this.pending.delete(p.slot);
    // Cleared first: a late reply to this probe can no longer land in the slot's next use.
    this.slots.clearSlot(p.slot);
    const i = p.key.lastIndexOf(':');
    this.release(p.slot, p.key.slice(0, i), Number(p.key.slice(i + 1)));
    if (err) return p.reject(err);
    if (v) this.stats.answered++; else this.stats.unanswered++;
    p.resolve(v);
  }

  /** A new probe table (a larger one after a reload): probes in flight fail, the slots move. */
  replace(slots: OnDemandSlots, first: number): void {
    const err = new HalfopenError('E_BUSY', 'the probe table was replaced (reload) while the probe was in flight');
    for (const p of [...this.pending.values()]) {
      this.pending.delete(p.slot);
      p.reject(err);
    }
    this.inUse.clear();
    this.queued = [];
    this.slots = slots;
    this.first = first;
    this.reset();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
