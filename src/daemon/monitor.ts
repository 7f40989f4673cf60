// The health-check scheduler of `halfopen serve`. Every backend owns a few
// slots of the probe table (depthFor): one per check that may be in flight at
// once. Each tick (10–100 ms, see tickFor): verdicts that landed in the kernel
// are applied, checks past their timeout fail, and the checks that are due go
// out in one batch through the sender pool. A silent backend only costs its
// own timeout; nothing waits for it.
//
// Checks are due on their own clock, not after the previous one finished: the
// next is due one interval (fastinter, downinter) after the previous was due,
// even while that one still waits for its reply. An up backend whose latest
// check is still unanswered one fastinter after it was due is suspect: its
// next check goes out then, without waiting for the timeout. So a backend
// that falls silent is down (fall - 1) x fastinter + timeout after the first
// unanswered check, not fall x timeout. Results are applied in the order the
// checks were sent, each check exactly once: an answer to a newer check
// settles every older one still waiting as unanswered.
//
// Progress. The agenda (WakeHeap) holds each backend's next moment of
// interest. A tick pops the entries that are due and, for each, settles what
// has finished, sends at most one check, and pushes the backend back strictly
// after `now`: a check that went out moves the schedule forward (a backend
// more than one interval behind restarts its schedule from now instead of
// catching up in a burst), and one with every slot in flight waits for its
// oldest deadline, which settle() has just moved past `now`. So every entry
// is popped at most once a tick and a tick's work is bounded by the number
// of backends; wake() enforces the invariant and counts any breach
// (`anomalies`, asserted zero by the property tests) rather than loop.
import { EventEmitter } from 'node:events';
import { HalfopenError } from '../errors';
import { Verdict, describeVerdict } from '../engine/probe-table';
import { BackendConfig } from './config';
import { AdminState, Backend, CheckOutcome, ChangeEvent, MAX_DEPTH, MAX_TICK_MS, depthFor, sameBackend, sameConfig } from './backend';
import { Histogram, LATENESS_BUCKETS, RTT_BUCKETS } from './histogram';
import { WakeHeap } from './wake-heap';
import type { SavedBackend } from './state-file';
import { sameRoute } from './send-routes';
import { OnDemandProbes, ProbeOnce, ProbeOptions } from './on-demand';

export { Backend, depthFor };
export type { CheckOutcome, ChangeEvent };

/**
 * What the scheduler needs of the probe engine: a table of slots it programs
 * one by one, SYNs sent for a list of slots, and the verdicts that land.
 * src/engine/engine.ts implements it against the kernel.
 */
export interface ProbeSlots {
  readonly capacity: number;
  /** Programs slot i for addr:port from source port sport and clears its verdict; route: the backend's source and mark. */
  setSlot(i: number, addr: bigint, port: number, sport: number, route?: { source?: string; mark?: number }): void;
  clearSlot(i: number): void;
  /** Next check of a programmed slot: new source port, cleared verdict. */
  rearmSlot(i: number, sport: number): void;
  verdict(i: number): Verdict | null;
  /** Whether slot i has a verdict (cheaper than verdict()). */
  answered(i: number): boolean;
  /** Slots whose verdict landed since the last call. */
  pollSlots(): Uint32Array;
  /** Sends one SYN for each slot. */
  sendSlots(slots: Uint32Array): Promise<unknown>;
  /** The XDP program's counters (enum ho_counter). */
  counters(): Record<string, number>;
  /** Whether SYNs of this family can leave (a route and a source address for it); absent: both can. */
  sendsFamily?(v4: boolean): boolean;
}

/** Instrumentation for tests: called as checks leave and as results are applied. */
export interface MonitorObserver {
  sent?(b: Backend, slot: number, dueAt: number, now: number): void;
  applied?(b: Backend, r: Readonly<CheckOutcome>, slot: number): void;
}

/** Slots a backend list needs (depthFor each). */
export const slotsFor = (list: Iterable<{ cfg: BackendConfig }>): number => {
  let n = 0;
  for (const b of list) n += depthFor(b.cfg);
  return n;
};

/** Probe-table size for a backend list: its slots and a quarter more to grow into on reload (beyond that, a reload opens a larger table). */
export const capacityFor = (list: Iterable<{ cfg: BackendConfig }>): number => {
  const n = slotsFor(list);
  return Math.max(1024, n + (n >> 2));
};

/**
 * Scheduling period: a tenth of the shortest interval or a fifth of the
 * shortest timeout, within 10–50 ms (MAX_TICK_MS). A tick batches every due
 * check; what it costs is mostly per tick (a task post to the sender thread,
 * a ring poll, and caches gone cold since the last one), so fewer, larger
 * ticks are cheaper: at 10,000 backends / 1 s, 100 ms ticks took 8.2–9.4 % of
 * a core against 9.3–10.8 % at 50 ms. But a check starts up to one tick late,
 * and with 100 ms ticks nearly every check is late by up to 100 ms: 50 ms
 * keeps lateness (p99) within 100 ms with room for the machine's own noise.
 */
export function tickFor(backends: Iterable<BackendConfig>): number {
  let shortest = Infinity;
  for (const b of backends) shortest = Math.min(shortest, b.interval / 10, b.timeout / 5);
  return Math.min(MAX_TICK_MS, Math.max(10, Math.floor(shortest)));
}

/** Window over which halfopen_schedule_lag_seconds reports the worst lateness. */
const LAG_WINDOW_MS = 10_000;
/** How often the reported states are checked for staleness. */
const FRESHNESS_EVERY_MS = 1000;

/**
 * /healthz fails when the scheduler has not ticked for this long, when a
 * batch of SYNs has been with the sender this long, or when checks leave
 * this late: a supervisor should restart such a daemon.
 */
export const UNHEALTHY_AFTER_MS = 2000;

export class Monitor extends EventEmitter implements ProbeOnce {
  private slots: ProbeSlots;
  /** Slots kept for probes on request (reserveOnDemand), at the top of the table. */
  private onDemand: OnDemandProbes | null = null;
  private readonly bySlot: (Backend | undefined)[] = [];
  private readonly free: number[] = [];
  /** Per slot: when its check in flight fails unanswered. */
  private deadline: Float64Array;
  private backends = new Map<string, Backend>();
  private byTarget = new Map<string, Backend>();
  private timer: NodeJS.Timeout | null = null;
  private tickMs = 50;
  private readonly heap = new WakeHeap<Backend>();
  private lagCur = 0;
  private lagPrev = 0;
  private lagWindowStart = Date.now();
  /** When the batch with the sender went out, or 0 when none is. */
  private sendingSince = 0;
  private nextFreshness = 0;
  private readonly sportLo: number;
  private readonly sportRange: number;
  /** When tick() last ran, and the worst lateness of a check it sent. */
  lastTickAt = 0;
  lastTickLate = 0;
  /** Agenda entries that would have been due again within the same tick (the progress invariant; always 0). */
  anomalies = 0;
  observer: MonitorObserver | null = null;
  /** Round-trip histogram of answered checks (seconds). */
  readonly rtt = new Histogram(RTT_BUCKETS);
  /** How late checks left against their schedule (seconds). */
  readonly lateness = new Histogram(LATENESS_BUCKETS);
  checksSent = 0;
  checksCompleted = 0;
  /** Checks in flight when their backend was removed or moved to new slots: never applied. */
  checksDropped = 0;

  /** `random`: the source of start spreading and jitter (a seeded one makes tests reproducible). */
  constructor(slots: ProbeSlots, sportLo: number, sportHi: number, private readonly random: () => number = Math.random) {
    super();
    this.slots = slots;
    this.sportLo = sportLo;
    this.sportRange = sportHi - sportLo + 1;
    this.deadline = this.emptyTable(slots.capacity);
  }

  /** Every slot free, lowest first out; returns the per-slot deadlines for that size. */
  private emptyTable(capacity: number): Float64Array {
    this.free.length = 0;
    this.bySlot.length = 0;
    for (let i = capacity - 1; i >= 0; i--) this.free.push(i);
    return new Float64Array(capacity);
  }

  list(): Backend[] { return [...this.backends.values()]; }
  get(name: string): Backend | undefined { return this.backends.get(name); }
  get size(): number { return this.backends.size; }
  get running(): boolean { return this.timer !== null; }

  /** Checks in flight now. */
  get inflight(): number {
    let n = 0;
    for (const b of this.backends.values()) n += b.inflight;
    return n;
  }

  /** Finds a backend by name or by "address:port" / "[v6]:port" (HAProxy agent-send). */
  find(key: string): Backend | undefined {
    return this.backends.get(key) ?? this.byTarget.get(key);
  }

  /**
   * Keeps the top `n` slots of the table for probes on request (/probe, the
   * plugin socket): scheduled checks never wait for them, and they never wait
   * for a check. Called once, before the first apply().
   */
  reserveOnDemand(n: number): void {
    if (this.onDemand || this.backends.size) throw new Error('reserveOnDemand: call it once, before apply()');
    if (!(n > 0)) return;
    if (n > this.free.length) throw new Error(`reserveOnDemand: ${n} slots asked, the table has ${this.free.length}`);
    this.free.splice(0, n); // free is [capacity-1 .. 0], lowest out first: these are the top n
    this.onDemand = new OnDemandProbes(this.slots, this.slots.capacity - n, n, this.sportLo, this.sportRange);
  }

  /** Slots kept for probes on request (0 when none). */
  get onDemandSlots(): number { return this.onDemand?.size ?? 0; }

  /** The on-demand pool's counters and occupancy, for /metrics; null when no slots are reserved. */
  get onDemandStats(): { asked: number; answered: number; unanswered: number; busy: number; resent: number; inflight: number; size: number } | null {
    const o = this.onDemand;
    return o && { ...o.stats, inflight: o.inflight, size: o.size };
  }

  /**
   * Ask one probe now: a fresh SYN to addr:port from an on-demand slot, even
   * when addr:port is also a backend. Resolves with the verdict, or null when
   * nothing answered by `deadline` (Date.now() ms); rejects with E_BUSY when
   * every on-demand slot is in use or none are reserved.
   */
  probeOnce(addr: bigint, port: number, opts: ProbeOptions, deadline: number): Promise<Verdict | null> {
    if (!this.onDemand) return Promise.reject(new HalfopenError('E_BUSY', 'no slots are reserved for probes on request'));
    return this.onDemand.probeOnce(addr, port, opts, deadline);
  }

  /**
   * Installs a backend set. Backends equal to a current one keep their state;
   * new ones start on a schedule spread over their interval.
   */
  apply(list: Array<{ cfg: BackendConfig; addr: bigint | null; unresolved?: string }>, now = Date.now()): void {
    const next = new Map<string, Backend>();
    list.forEach(({ cfg, addr, unresolved }, i) => {
      const old = this.backends.get(cfg.name);
      // The same check of the same name keeps its history, even at a new address.
      const keep = old && sameBackend(old.cfg, cfg) ? old : undefined;
      if (keep && keep.addr === addr && sameConfig(keep.cfg, cfg)) {
        // Nothing changed: the same record, slots, checks in flight and schedule.
        next.set(cfg.name, keep);
        return;
      }
      const b = new Backend(cfg, addr, now, keep);
      b.unresolved = unresolved ?? '';
      // A new source or mark reprograms the slots (new slots, same schedule).
      if (keep && keep.depth === b.depth && keep.addr === addr && sameRoute(keep.cfg, cfg)) {
        b.slots = keep.slots;
        b.slot0 = keep.slot0;
        b.headDeadline = keep.headDeadline;
        b.inflight = keep.inflight;
        b.nextAt = keep.nextAt;
        b.queue = keep.queue;
        b.round = keep.round;
        b.lastPlanned = keep.lastPlanned;
        b.slotFreedAt = keep.slotFreedAt;
      } else if (keep) {
        b.nextAt = keep.nextAt; // same schedule, new slots (the timing changed)
        b.lastPlanned = keep.lastPlanned;
      } else {
        // Spread first checks evenly over the interval: no herd.
        b.nextAt = now + Math.floor((cfg.interval * (i + this.random())) / list.length);
        b.lastPlanned = b.nextAt - cfg.interval;
      }
      next.set(cfg.name, b);
    });
    for (const [name, old] of this.backends) {
      const b = next.get(name);
      if (!b || b.slots !== old.slots) this.release(old);
    }
    this.backends = next;
    this.indexTargets();
    this.heap.clear();
    const tick = tickFor(list.map((x) => x.cfg));
    if (tick !== this.tickMs) {
      this.tickMs = tick;
      if (this.timer) { this.stop(); this.start(); }
    }
    this.allocate([...next.values()].filter((b) => !b.slots.length && b.addr !== null));
    for (const b of next.values()) {
      for (const s of b.slots) this.bySlot[s] = b;
      this.wake(b);
      this.report(b, now, null);
    }
  }

  /**
   * A backend's name now resolves to `addr` (null: to nothing, `why`). Its
   * history stays; its checks in flight are dropped and it gets new slots.
   */
  setAddress(name: string, addr: bigint | null, why = '', now = Date.now()): void {
    const old = this.backends.get(name);
    if (!old || old.addr === addr) {
      if (old) old.unresolved = why;
      return;
    }
    const b = new Backend(old.cfg, addr, now, old);
    b.unresolved = why;
    b.nextAt = now;
    b.lastPlanned = now - old.cfg.interval;
    this.release(old);
    this.backends.set(name, b);
    this.indexTargets();
    if (addr !== null) {
      this.allocate([b]);
      for (const s of b.slots) this.bySlot[s] = b;
    }
    this.wake(b);
    this.report(b, now, null);
  }

  /**
   * Puts back what a state file saved for backends of the same name, host and
   * port: health, streak, reported state, admin state, counters, `since` and
   * the last result. Returns how many it restored.
   */
  restore(saved: Record<string, SavedBackend>, now = Date.now()): number {
    let n = 0;
    for (const b of this.backends.values()) {
      const s = saved[b.cfg.name];
      if (!s || s.host !== b.cfg.host || s.port !== b.cfg.port) continue;
      b.health.restore(s.health, s.streak);
      b.admin = s.admin;
      b.since = s.since;
      b.changes = s.changes;
      b.checks = s.checks;
      Object.assign(b.counts, s.counts);
      if (s.last) b.last = { ...s.last };
      b.reported = s.reported;
      this.wake(b);
      this.report(b, now, null);
      n++;
    }
    return n;
  }

  /** Sets a backend's administrative state; false when there is no such backend. */
  setAdmin(name: string, admin: AdminState, now = Date.now()): boolean {
    const b = this.backends.get(name);
    if (!b) return false;
    if (b.admin === admin) return true;
    const from = b.admin;
    b.admin = admin;
    this.event(b, 'admin', from, admin, 'admin', null, now);
    if (from === 'maint') {
      // Back from maintenance: checked at once, not stale from its old result.
      b.born = now;
      b.nextAt = now;
      b.lastPlanned = now - b.cfg.interval;
    }
    this.wake(b);
    this.report(b, now, null);
    return true;
  }

  private indexTargets(): void {
    this.byTarget = new Map();
    for (const b of this.backends.values()) {
      if (b.addr === null) continue;
      // The first backend of an address:port answers for it (duplicates need an explicit opt-in).
      for (const key of [`${b.address}:${b.cfg.port}`, `[${b.address}]:${b.cfg.port}`]) if (!this.byTarget.has(key)) this.byTarget.set(key, b);
    }
  }

  /** First slots for all, then the extra ones: first slots of neighbours are adjacent in the table. */
  private allocate(list: Backend[]): void {
    if (this.free.length < list.reduce((n, b) => n + b.depth, 0)) throw new Error('probe table full');
    for (let k = 0; k < MAX_DEPTH; k++) {
      for (const b of list) {
        if (k >= b.depth) continue;
        const slot = this.free.pop()!;
        b.slots.push(slot);
        if (k === 0) b.slot0 = slot;
        this.slots.setSlot(slot, b.addr!, b.cfg.port, this.sportLo + (slot % this.sportRange), b.cfg);
      }
    }
  }

  private release(b: Backend): void {
    this.checksDropped += b.inflight;
    for (const slot of b.slots) {
      if (this.bySlot[slot] !== b) continue;
      this.slots.clearSlot(slot);
      this.bySlot[slot] = undefined;
      this.free.push(slot);
    }
  }

  private stopped = false;

  start(): void {
    if (this.timer) return;
    this.stopped = false;
    this.timer = setInterval(() => this.tick(), this.tickMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.stopped = true;
  }

  /**
   * Whether the scheduler keeps up: running, ticking, the sender answering,
   * checks leaving on time. The reason names what is wrong.
   */
  health(now = Date.now()): { ok: boolean; reason: string } {
    if (!this.timer) return { ok: false, reason: 'scheduler stopped' };
    const quiet = now - this.lastTickAt;
    if (this.lastTickAt && quiet > UNHEALTHY_AFTER_MS) return { ok: false, reason: `no scheduler tick for ${quiet} ms` };
    if (this.sendingSince && now - this.sendingSince > UNHEALTHY_AFTER_MS) return { ok: false, reason: `sender busy for ${now - this.sendingSince} ms` };
    if (this.lastTickLate > UNHEALTHY_AFTER_MS) return { ok: false, reason: `checks leaving ${this.lastTickLate} ms late` };
    return { ok: true, reason: 'ok' };
  }

  /** Whether b is checked at all: not in maintenance, and with an address. */
  private checked(b: Backend): boolean { return b.admin !== 'maint' && b.addr !== null; }

  /**
   * b's next moment of interest: its next check (when it is checked and a
   * slot is free for it), or its oldest check's deadline; Infinity for none.
   */
  private wakeAt(b: Backend): number {
    const due = this.checked(b) && b.inflight < b.depth ? b.nextAt : Infinity;
    return b.inflight ? Math.min(due, b.headDeadline) : due;
  }

  /** (Re)schedules b; with `now`, strictly after it (the progress invariant, see the top of this file). */
  private wake(b: Backend, now?: number): void {
    b.version++;
    let at = this.wakeAt(b);
    if (at === Infinity) return; // nothing to do until an admin change or a new address
    if (now !== undefined && !(at > now)) {
      this.anomalies++;
      at = now + this.tickMs;
    }
    this.heap.push(at, b);
  }

  /** Worst lateness behind schedule over the current window, ms. */
  get lagMs(): number { return Math.max(this.lagPrev, this.lagCur); }

  /** One scheduling step; public for tests. */
  tick(now = Date.now()): void {
    this.lastTickAt = now;
    if (now - this.lagWindowStart >= LAG_WINDOW_MS) {
      this.lagPrev = this.lagCur;
      this.lagCur = 0;
      this.lagWindowStart = now;
    }
    for (const slot of this.slots.pollSlots()) {
      const b = this.bySlot[slot];
      if (b && b.inflight && this.settle(b, now)) this.wake(b);
    }
    if (now >= this.nextFreshness) {
      this.nextFreshness = now + FRESHNESS_EVERY_MS;
      for (const b of this.backends.values()) this.report(b, now, null);
    }
    if (this.sendingSince) return; // the due checks go out with the next batch
    let worst = 0;
    const due: number[] = [];
    while (this.heap.peek() <= now) {
      const b = this.heap.pop();
      if (!b) break;
      if (b.inflight) this.settle(b, now);
      const at = b.nextAt;
      if (at <= now && this.checked(b)) {
        if (b.inflight < b.depth) {
          // A check that waited for a slot is due from when one freed.
          const from = Math.max(at, b.slotFreedAt);
          if (now - from > worst) worst = now - from;
          due.push(this.send(b, at, from, now));
        }
      }
      this.wake(b, now);
    }
    this.lastTickLate = worst;
    if (worst > this.lagCur) this.lagCur = worst;
    if (due.length) {
      this.sendingSince = now || 1;
      this.checksSent += due.length;
      this.slots.sendSlots(Uint32Array.from(due)).then(
        () => { this.sendingSince = 0; },
        // After stop() the sender threads are being torn down: a batch they drop then is no error.
        (err) => { this.sendingSince = 0; if (!this.stopped) this.emit('error', err); },
      );
    }
  }

  /** Puts b's next check (due at `at`, free to go from `from`) in a free slot; returns the slot. */
  private send(b: Backend, at: number, from: number, now: number): number {
    let k = 0;
    if (b.inflight) while (b.isQueued(k)) k++;
    const slot = k === 0 ? b.slot0 : b.slots[k];
    // A new source port each round: a late reply to an earlier check cannot
    // pass for this one (it no longer matches the table).
    this.slots.rearmSlot(slot, this.sportLo + ((slot + ++b.round) % this.sportRange));
    this.deadline[slot] = now + b.cfg.timeout;
    if (!b.inflight) b.headDeadline = now + b.cfg.timeout;
    b.queue |= k << (3 * b.inflight++);
    this.lateness.observe((now - from) / 1000);
    this.observer?.sent?.(b, slot, from, now);
    b.lastPlanned = at;
    b.jitter = b.cfg.jitter * (this.random() * 2 - 1);
    this.schedule(b, now);
    // More than one spacing behind (a stall, or an interval shorter than the
    // tick): the schedule restarts from now rather than catch up in a burst.
    if (b.nextAt <= now) {
      b.lastPlanned = now;
      this.schedule(b, now);
    }
    return slot;
  }

  /**
   * When the next check is due: one interval (per the current health) after
   * the newest was due, or sooner for an up backend whose newest check is
   * still unanswered one fastinter after it was due (suspect). Jitter spreads
   * the steady schedule (drawn once per check, so a result does not draw it
   * again); fastinter steps are not jittered, so a backend changing state is
   * decided on time. Called whenever checks leave or settle: a result that
   * shortens the interval can make the next check due in the past, and then
   * it is due now.
   */
  private schedule(b: Backend, now: number): void {
    const interval = b.health.nextInterval(b.cfg);
    let next = b.lastPlanned + (b.health.transitioning ? interval : interval * (1 + b.jitter));
    if (b.inflight && b.health.state === 'up') next = Math.min(next, b.lastPlanned + b.cfg.fastinter);
    b.nextAt = next < now ? now : next;
  }

  /**
   * Applies b's finished checks, oldest first: answered ones, ones past their
   * deadline, and older ones a newer answer has overtaken. Returns whether any
   * was applied. Afterwards b's oldest check in flight, if any, has a deadline
   * after `now`.
   */
  private settle(b: Backend, now: number): boolean {
    let answered = b.inflight - 1; // checks up to this one (oldest = 0) a newer answer has overtaken
    while (answered >= 0 && !this.slots.answered(b.queued(answered))) answered--;
    let settled = 0;
    while (b.inflight) {
      const slot = b.queued(0);
      const v = this.slots.verdict(slot);
      if (!v && settled > answered && b.headDeadline > now) break;
      b.queue >>>= 3;
      b.inflight--;
      settled++;
      if (b.inflight) b.headDeadline = this.deadline[b.queued(0)];
      this.complete(b, v, slot, now);
    }
    if (!settled) return false;
    if (b.inflight + settled >= b.depth) b.slotFreedAt = now; // a check due meanwhile could not leave before now
    this.schedule(b, now);
    return true;
  }

  private complete(b: Backend, v: Verdict | null, slot: number, now: number): void {
    // The last result is updated in place: a new object per check would live
    // one interval, get promoted, and die in the old generation, and those
    // full collections were the bulk of the daemon's GC work.
    const r = b.last ??= { ok: false, state: 'filtered', reason: '', rtt_ms: null, ts: 0 };
    r.ts = now;
    if (!v) {
      r.ok = false; r.state = 'filtered'; r.reason = 'no-response'; r.rtt_ms = null;
    } else {
      const d = describeVerdict(v);
      r.ok = d.state === 'open'; r.state = d.state; r.reason = d.reason; r.rtt_ms = d.rttMs;
      if (d.rttMs !== null) this.rtt.observe(d.rttMs / 1000);
    }
    b.checks++;
    this.checksCompleted++;
    b.counts[r.state]++;
    b.remember(r);
    b.notePlugin(r, v ? v.ttl : -1);
    this.observer?.applied?.(b, r, slot);
    const first = b.firstDecides;
    if (first) {
      b.firstDecides = false;
      b.health.restore(r.ok ? Infinity : 0, r.ok ? 1 : -1); // fully up or fully down: rise/fall from here on
    } else {
      b.health.record(r.ok);
    }
    if (!r.ok && b.cfg.logFailures) {
      this.event(b, 'check', b.reported, b.reported, r.reason, r.rtt_ms, now);
    }
    this.report(b, now, r);
    if (first) this.emit('first-check', b);
  }

  /**
   * Reports b's state when it changed: a rise/fall transition after check
   * `r`, or (r = null) its latest check going stale or fresh again.
   */
  private report(b: Backend, now: number, r: CheckOutcome | null): void {
    const to = b.effectiveState(now);
    if (to === b.reported) return;
    const from = b.reported;
    b.reported = to;
    b.changes++;
    b.since = now;
    if (to === 'up') b.upAt = now;
    const why = to === 'down' ? b.downReason(now) : null;
    this.event(b, 'state', from, to, why ?? (r ?? b.last)?.reason ?? 'stale', why ? null : (r ?? b.last)?.rtt_ms ?? null, now);
  }

  /** Emits one event (state, admin or check) about b, with its current streak. */
  private event(b: Backend, event: ChangeEvent['event'], from: ChangeEvent['from'], to: ChangeEvent['to'], reason: string, rttMs: number | null, now: number): void {
    const ev: ChangeEvent = {
      event, time: new Date(now).toISOString(), backend: b.cfg.name, address: b.address, port: b.cfg.port,
      from, to, reason, rtt_ms: rttMs, consecutive: { successes: b.health.successes, failures: b.health.failures },
    };
    this.emit('change', ev, b);
  }

  /**
   * Adds one backend at run time, checked at once (the plugin socket's
   * learning): its first check alone decides its health ('first-check' is
   * emitted then), later ones go through rise/fall. Throws when the probe
   * table has no free slot for it, or the name is taken.
   */
  learn(cfg: BackendConfig, addr: bigint, now = Date.now()): Backend {
    if (this.backends.has(cfg.name)) throw new Error(`backend ${cfg.name} exists`);
    const b = new Backend(cfg, addr, now);
    if (this.free.length < b.depth) throw new Error('probe table full');
    b.firstDecides = true;
    b.nextAt = now;
    b.lastPlanned = now - cfg.interval;
    this.allocate([b]);
    for (const s of b.slots) this.bySlot[s] = b;
    this.backends.set(cfg.name, b);
    for (const key of [`${b.address}:${cfg.port}`, `[${b.address}]:${cfg.port}`]) if (!this.byTarget.has(key)) this.byTarget.set(key, b);
    const tick = tickFor([cfg]);
    if (tick < this.tickMs) {
      this.tickMs = tick;
      if (this.timer) { this.stop(); this.start(); }
    }
    this.wake(b);
    this.report(b, now, null);
    return b;
  }

  /** Drops one backend (a learned one nobody asked about); false when there is none of that name. */
  forget(name: string): boolean {
    const b = this.backends.get(name);
    if (!b) return false;
    this.release(b);
    b.version++; // its agenda entries are void
    this.backends.delete(name);
    this.indexTargets();
    return true;
  }

  /** The XDP program's counters (enum ho_counter) since the current engine loaded it. */
  xdpCounters(): Record<string, number> { return this.slots.counters(); }

  /** Swaps in a new probe table (a larger one after a reload); backends keep their state. */
  replaceSlots(slots: ProbeSlots): void {
    this.slots = slots;
    this.deadline = this.emptyTable(slots.capacity);
    if (this.onDemand) {
      this.free.splice(0, this.onDemand.size);
      this.onDemand.replace(slots, slots.capacity - this.onDemand.size);
    }
    const list = [...this.backends.values()];
    for (const b of list) {
      // Checks in flight in the old table are dropped, not counted.
      this.checksDropped += b.inflight;
      b.inflight = 0; b.queue = 0; b.slots = [];
    }
    this.allocate(list.filter((b) => b.addr !== null));
    for (const b of list) {
      for (const s of b.slots) this.bySlot[s] = b;
      this.wake(b);
    }
  }
}
