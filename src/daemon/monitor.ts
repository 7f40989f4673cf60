// The health-check scheduler of `halfopen serve`. Every backend owns a few
// slots of the probe table (depthFor): one per check that may be in flight at
// once. Each tick (10–50 ms, see tickFor): verdicts that landed in the kernel
// are applied, checks past their timeout fail, and the checks due before the
// next tick go to the sender pool in one batch, each with the moment it
// leaves (leadOf, departureStep): the sender holds each SYN until then, so
// checks leave when due, spread over the tick, not in one burst. A silent
// backend only costs its own timeout; nothing waits for it.
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
// Progress. The agenda (TimerWheel) holds each backend's next moment of
// interest: its next check, its oldest check's deadline, or, while it is
// reported up, the moment its latest result goes stale. A tick takes the
// entries that are due and, for each, settles what has finished, sends at
// most one check, and files the backend again strictly after `now`: a check
// that went out moves the schedule forward (a backend more than one interval
// behind restarts its schedule from now instead of catching up in a burst),
// and one with every slot in flight waits for its oldest deadline, which
// settle() has just moved past `now`. So every entry is taken at most once a
// tick and a tick's work is bounded by the number of backends; wake()
// enforces the invariant and counts any breach (`anomalies`, asserted zero
// by the property tests) rather than loop.
//
// Memory. Every number the scheduler keeps per backend is a row of a
// BackendStore (typed arrays, backend-store.ts); the Backend objects the
// rest of the daemon reads are thin views of those rows.
import { EventEmitter } from 'node:events';
import { HalfopenError } from '../errors';
import { Verdict, reasonOf } from '../engine/probe-table';
import { roundMs } from '../types';
import { BackendConfig } from './config';
import { AdminState, Backend, CheckOutcome, ChangeEvent, MAX_DEPTH, MAX_TICK_MS, depthFor } from './backend';
import { BackendStore, NO_STATE, reasonOfCode, reasonToCode, rttKept, rttOfKept, streakKept } from './backend-store';
import { healthAfter, healthMax, intervalAt, streakAfter, transitioning } from './health';
import { HO_PROBE_STATE_UNREACHABLE } from '../contract.generated';
import { Histogram, LATENESS_BUCKETS, RTT_BUCKETS } from './histogram';
import { TimerWheel } from './timer-wheel';
import type { SavedBackend } from './state-file';
import { sameRoute } from './send-routes';
import { OnDemandProbes, ProbeOnce, ProbeOptions } from './on-demand';
import { ApplyEntry, ApplyPlan, Change } from './apply-plan';
import { SlotStack } from './slot-stack';

export { Backend, depthFor, ApplyPlan };
export type { ApplyEntry };
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
  /**
   * Sends one SYN for each slot; with waits, slot k's leaves waits[k] ms after
   * `from` (this clock's ms), and the result may say how late the sender was
   * (SendResult.late: per ms of wait, ms).
   */
  sendSlots(slots: Uint32Array, waits?: Uint16Array, from?: number): Promise<unknown>;
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
  return tickOfShortest(shortest);
}

/** tickFor from the shortest interval / 10 or timeout / 5 of a set. */
const tickOfShortest = (shortest: number): number => Math.min(MAX_TICK_MS, Math.max(10, Math.floor(shortest)));

/**
 * Batches with the sender at once: one pacing its SYNs through a tick and
 * one more. The sender takes them in order, so more would only let a
 * backlog build behind a slow sender while the checks' timeouts run from
 * when they were due to leave. (Four once failed plugin-via.test's learning
 * case: on the Piscina worker serve used then, a fourth batch of the plugin
 * socket's 5 ms stepped ticks waited up to a second. On the addon's sender
 * threads that test passes with four, twice in two runs; with the worker
 * it fails twice in two.)
 */
const MAX_BATCHES = 2;

/** SYNs the sender should find at each departure step, and the longest step (departureStep). */
const DEPARTURE_SYNS = 32, MAX_DEPARTURE_STEP_MS = 10;

/**
 * Checks leave in steps of whole ms, so that each step carries about
 * DEPARTURE_SYNS SYNs at a batch of `n` checks a tick: every step is a
 * wake-up of the sender thread and a sendmmsg call, and at 10,000 checks/s
 * one a millisecond (10 SYNs each) cost more CPU than the checks. A check
 * leaves at the end of its step, at most a step less 1 ms late, its timeout
 * counted from then and its lateness counted.
 */
export function departureStep(n: number, tickMs: number): number {
  if (!n) return 1;
  return Math.max(1, Math.min(MAX_DEPARTURE_STEP_MS, Math.ceil((DEPARTURE_SYNS * tickMs) / n)));
}

/** Window over which halfopen_schedule_lag_seconds reports the worst lateness. */
const LAG_WINDOW_MS = 10_000;

/**
 * /healthz fails when the scheduler has not ticked for this long, when a
 * batch of SYNs has been with the sender this long, or when checks leave
 * this late: a supervisor should restart such a daemon.
 */
export const UNHEALTHY_AFTER_MS = 2000;

/** PROBE_STATES codes (enum ho_probe_state - 1). */
const OPEN = 0, FILTERED = 2;
const NO_RESPONSE = reasonToCode('no-response');
const ADMIN_MAINT = 2;

export class Monitor extends EventEmitter implements ProbeOnce {
  private slots: ProbeSlots;
  /** Slots kept for probes on request (reserveOnDemand), at the top of the table. */
  private onDemand: OnDemandProbes | null = null;
  /** The rows behind the backends (backend-store.ts), and each row's current view. */
  private readonly store = new BackendStore();
  private readonly byId: (Backend | undefined)[] = [];
  /** Per slot: the row whose check it carries (0: none). */
  private owner: Int32Array;
  private readonly free = new SlotStack();
  /** Per slot: when its check in flight fails unanswered. */
  private deadline: Float64Array;
  private backends = new Map<string, Backend>();
  /** Moves on with every change to the backend set, its views or addresses (what an ApplyPlan compared against). */
  private generation = 0;
  /** "address:port" and "[address]:port" → backend, built when first asked for (find). */
  private byTarget: Map<string, Backend> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private tickMs = 50;
  private readonly wheel = new TimerWheel(50);
  private lagCur = 0;
  private lagPrev = 0;
  private lagWindowStart = Date.now();
  private readonly sportLo: number;
  private readonly sportRange: number;
  /** Reason codes of ICMP type/code pairs (type × 256 + code), 0 until first seen. */
  private readonly icmpReason = new Uint16Array(65536);
  /** The tick being run: what visitRow() works against. */
  private now = 0;
  /** Departure step of this tick's checks, ms (departureStep, from the last tick's batch). */
  private step = 1;
  private worst = 0;
  private due: number[] = [];
  /** Per check of the tick's batch: how many ms after `now` it leaves, and how late that is against its schedule. */
  private waits: number[] = [];
  private late: number[] = [];
  /** When each batch still with the sender went out (at most MAX_BATCHES). */
  private readonly sending: number[] = [];
  private readonly visit = (id: number): void => this.visitRow(id);
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
    this.owner = new Int32Array(slots.capacity);
  }

  /** Every slot free, lowest first out; returns the per-slot deadlines for that size. */
  private emptyTable(capacity: number): Float64Array {
    this.free.reset(capacity);
    return new Float64Array(capacity);
  }

  list(): Backend[] { return [...this.backends.values()]; }
  get(name: string): Backend | undefined { return this.backends.get(name); }
  get size(): number { return this.backends.size; }
  get running(): boolean { return this.timer !== null; }

  /** When the oldest batch still with the sender went out, or 0 when none is. */
  private get sendingSince(): number { return this.sending.length ? this.sending[0] : 0; }

  /** Checks in flight now. */
  get inflight(): number {
    let n = 0;
    for (const b of this.backends.values()) n += this.store.inflight[b.id];
    return n;
  }

  /** Finds a backend by name or by "address:port" / "[v6]:port" (HAProxy agent-send). */
  find(key: string): Backend | undefined {
    return this.backends.get(key) ?? this.targets().get(key);
  }

  private targets(): Map<string, Backend> {
    if (this.byTarget) return this.byTarget;
    const t = this.byTarget = new Map();
    for (const b of this.backends.values()) this.indexTarget(t, b);
    return t;
  }

  /** The first backend of an address:port answers for it (duplicates need an explicit opt-in). */
  private indexTarget(t: Map<string, Backend>, b: Backend): void {
    if (b.addr === null) return;
    const a = b.address;
    for (const key of [`${a}:${b.cfg.port}`, `[${a}]:${b.cfg.port}`]) if (!t.has(key)) t.set(key, b);
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
    this.free.dropBottom(n); // lowest out first: the bottom n are the top n of the table
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

  /** A new view for a fresh row or (keep) for keep's row, registered as the row's current one. */
  private view(cfg: BackendConfig, addr: bigint | null, now: number, keep?: Backend): Backend {
    const b = new Backend(cfg, addr, now, keep, this.store);
    this.byId[b.id] = b;
    return b;
  }

  /** Drops b's record: its slots, its agenda entry, its row. */
  private drop(b: Backend): void {
    if (!b.live) return;
    const id = b.id;
    this.releaseSlots(id);
    this.wheel.cancel(id);
    this.byId[id] = undefined;
    this.store.release(id);
    b.retire();
  }

  /**
   * Installs a backend set at once: prepareApply() run to its end and
   * committed in one piece (at start, and in tests).
   */
  apply(list: ApplyEntry[], now = Date.now()): void {
    this.prepareApply(list, now).runNow(now);
  }

  /**
   * A plan to install a backend set (apply-plan.ts): compared with the
   * running one in steps, then committed. Backends equal to a current one
   * keep their state untouched; changed ones keep their history; new ones
   * start on a schedule spread over their interval from the commit. `list`
   * may be a function: it is asked again when the running set changes
   * before the commit (ApplyPlan).
   */
  prepareApply(list: readonly ApplyEntry[] | (() => readonly ApplyEntry[]), now = Date.now()): ApplyPlan {
    return new ApplyPlan({
      backends: () => this.backends,
      generation: () => this.generation,
      rows: this.store,
      commitPlan: (plan, at) => this.commitPlan(plan, at),
    }, list, now);
  }

  /** Installs what a plan found to differ; the unchanged backends are not visited (a reload changing 1 % of 100,000 touches those 1,000). */
  private commitPlan(plan: ApplyPlan, now: number): void {
    const s = this.store, list = plan.list, next = plan.next;
    for (const old of plan.removed) this.drop(old);
    const fresh: Backend[] = [];
    const touched: Backend[] = [];
    for (const i of plan.changes) {
      const { cfg, addr, unresolved } = list[i];
      const old = this.backends.get(cfg.name);
      let b: Backend;
      if (plan.kind[i] === Change.Changed) {
        // The same check of the same name keeps its history, even at a new address.
        // A new source or mark, depth or address reprograms the slots (new slots, same schedule).
        const keep = old!;
        const sameSlots = keep.depth === depthFor(cfg) && keep.addr === addr && sameRoute(keep.cfg, cfg);
        if (!sameSlots) this.releaseSlots(keep.id);
        b = this.view(cfg, addr, now, keep);
        if (!sameSlots) s.slotFreedAt[b.id] = 0;
        if (!sameSlots && addr !== null) fresh.push(b);
      } else {
        if (old) this.drop(old); // another check under the same name
        b = this.view(cfg, addr, now);
        // Spread first checks evenly over the interval: no herd.
        const at = now + Math.floor((cfg.interval * (i + this.random())) / list.length);
        s.nextAt[b.id] = at;
        s.lastPlanned[b.id] = at - cfg.interval;
        if (addr !== null) fresh.push(b);
      }
      b.unresolved = unresolved ?? '';
      next.set(cfg.name, b);
      touched.push(b);
    }
    this.backends = next as Map<string, Backend>;
    this.byTarget = null;
    this.generation++;
    this.setTick(tickOfShortest(plan.shortest));
    this.allocate(fresh);
    for (const b of touched) {
      this.wake(b);
      this.report(b, now);
    }
  }

  /** A new scheduling period: the timer and the wheel follow. */
  private setTick(tick: number): void {
    if (tick === this.tickMs) return;
    this.tickMs = tick;
    this.wheel.retick(tick);
    if (this.timer) { this.stop(); this.start(); }
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
    this.releaseSlots(old.id);
    const b = this.view(old.cfg, addr, now, old);
    b.unresolved = why;
    b.nextAt = now;
    b.lastPlanned = now - b.cfg.interval;
    this.store.slotFreedAt[b.id] = 0;
    this.backends.set(name, b);
    this.byTarget = null;
    this.generation++;
    if (addr !== null) this.allocate([b]);
    this.wake(b);
    this.report(b, now);
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
      b.counts = { ...b.counts, ...s.counts };
      if (s.last) b.last = s.last;
      b.reported = s.reported;
      this.wake(b);
      this.report(b, now);
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
    this.report(b, now);
    return true;
  }

  /** First slots for all, then the extra ones: first slots of neighbours are adjacent in the table. */
  private allocate(list: Backend[]): void {
    if (this.free.length < list.reduce((n, b) => n + b.depth, 0)) throw new Error('probe table full');
    const s = this.store;
    for (let k = 0; k < MAX_DEPTH; k++) {
      for (const b of list) {
        if (k >= b.depth) continue;
        const slot = this.free.pop();
        const id = b.id;
        s.setSlot(id, k, slot);
        this.owner[slot] = id;
        this.slots.setSlot(slot, b.addr!, b.cfg.port, this.sportLo + (slot % this.sportRange), b.cfg);
      }
    }
  }

  /** Frees row id's slots; its checks in flight are dropped (never applied). */
  private releaseSlots(id: number): void {
    const s = this.store;
    this.checksDropped += s.inflight[id];
    for (let k = 0; k < s.nslots[id]; k++) {
      const slot = s.slotOf(id, k);
      if (this.owner[slot] !== id) continue;
      this.slots.clearSlot(slot);
      this.owner[slot] = 0;
      this.free.push(slot);
    }
    s.clearSlots(id);
    s.inflight[id] = 0;
    s.queue[id] = 0;
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

  /** Whether row id is checked at all: not in maintenance, and with an address. */
  private checked(b: Backend): boolean { return this.store.admin[b.id] !== ADMIN_MAINT && b.addr !== null; }

  /**
   * b's next moment of interest: its next check (when it is checked and a
   * slot is free for it), its oldest check's deadline, and while it is
   * reported up the moment its latest result goes stale; Infinity for none.
   */
  private wakeAt(b: Backend): number {
    const s = this.store, id = b.id, inflight = s.inflight[id];
    let at = this.checked(b) && inflight < b.depth ? s.nextAt[id] - this.leadOf(inflight) : Infinity;
    if (inflight && s.headDeadline[id] < at) at = s.headDeadline[id];
    if (s.reported[id]) {
      const stale = b.staleAt();
      if (stale < at) at = stale;
    }
    return at;
  }

  /**
   * How far ahead of its due time a backend's next check is handed to the
   * sender, which holds it until then (sendSlots' waits): one tick, so checks
   * leave when they are due, spread over the tick, rather than up to a tick
   * late and all at once. None while a check of its is in flight: that
   * one's result may still change when the next is due (fastinter on a
   * failure, no suspect check after an answer), so the next is decided at
   * its tick, as without look-ahead.
   */
  private leadOf(inflight: number): number { return inflight ? 0 : this.tickMs; }

  /** (Re)schedules b; with `now`, strictly after it (the progress invariant, see the top of this file). */
  private wake(b: Backend, now?: number): void {
    let at = this.wakeAt(b);
    if (at !== Infinity && now !== undefined && !(at > now)) {
      this.anomalies++;
      at = now + this.tickMs;
    }
    this.wheel.schedule(b.id, at);
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
    const s = this.store;
    const landed = this.slots.pollSlots();
    for (let i = 0; i < landed.length; i++) {
      const id = this.owner[landed[i]];
      if (id && s.inflight[id]) {
        const b = this.byId[id]!;
        if (this.settle(b, now)) this.wake(b);
      }
    }
    // Beyond MAX_BATCHES the sender is behind, and the due checks wait.
    if (this.sending.length >= MAX_BATCHES) return;
    this.now = now;
    this.worst = 0;
    const due = this.due, waits = this.waits, late = this.late;
    due.length = 0; waits.length = 0; late.length = 0;
    this.wheel.drain(now, this.visit);
    const worst = this.worst;
    this.lastTickLate = worst;
    if (worst > this.lagCur) this.lagCur = worst;
    this.step = departureStep(due.length, this.tickMs);
    if (!due.length) return;
    const since = now || 1;
    this.sending.push(since);
    this.checksSent += due.length;
    const w = Uint16Array.from(waits), l = Float64Array.from(late);
    const done = () => { const i = this.sending.indexOf(since); if (i >= 0) this.sending.splice(i, 1); };
    this.slots.sendSlots(Uint32Array.from(due), w, now).then(
      (r) => { done(); this.observeLateness(w, l, r); },
      // After stop() the sender threads are being torn down: a batch they drop then is no error.
      (err) => { done(); this.observeLateness(w, l, null); if (!this.stopped) this.emit('error', err); },
    );
  }

  /**
   * A batch is sent: each check's lateness is how late it was handed over
   * plus how late the sender started on its millisecond of departures.
   */
  private observeLateness(waits: Uint16Array, late: Float64Array, r: unknown): void {
    const sender = (r as { late?: Float64Array } | null)?.late;
    let worst = 0;
    for (let k = 0; k < waits.length; k++) {
      const ms = late[k] + (sender && waits[k] < sender.length ? sender[waits[k]] : 0);
      if (ms > worst) worst = ms;
      this.lateness.observe(ms / 1000);
    }
    if (worst > this.lagCur) this.lagCur = worst;
  }

  /** One agenda entry that fell due in this tick: settle, send, report staleness, file it again. */
  private visitRow(id: number): void {
    const b = this.byId[id];
    if (!b) return;
    const s = this.store, now = this.now;
    if (s.inflight[id]) this.settle(b, now);
    const at = s.nextAt[id];
    if (at - this.leadOf(s.inflight[id]) <= now && this.checked(b) && s.inflight[id] < b.depth) {
      // A check that waited for a slot is due from when one freed. It leaves
      // now when that has passed, else at the end of the departure step it
      // falls in.
      const from = Math.max(at, s.slotFreedAt[id]);
      const step = this.step, wait = from > now ? Math.ceil((from - now) / step) * step : 0;
      const leave = now + wait;
      if (leave - from > this.worst) this.worst = leave - from;
      this.due.push(this.send(b, at, from, leave, now));
      this.waits.push(wait);
      this.late.push(leave - from);
    }
    if (s.reported[id] && b.isStale(now)) this.report(b, now);
    this.wake(b, now);
  }

  /** Index into b's slots of its i-th check in flight, oldest first. */
  private queuedIndex(id: number, i: number): number { return (this.store.queue[id] >>> (3 * i)) & 7; }
  /** Slot of b's i-th check in flight, oldest first. */
  private queued(id: number, i: number): number { return this.store.slotOf(id, this.queuedIndex(id, i)); }

  /** Puts b's next check (due at `at`, free to go from `from`, leaving at `leave`) in a free slot; returns the slot. */
  private send(b: Backend, at: number, from: number, leave: number, now: number): number {
    const s = this.store, id = b.id, inflight = s.inflight[id];
    let k = 0;
    if (inflight) {
      // The first index no check in flight uses.
      let used = 0;
      for (let i = 0; i < inflight; i++) used |= 1 << this.queuedIndex(id, i);
      while (used & (1 << k)) k++;
    }
    const slot = s.slotOf(id, k);
    // A new source port each round: a late reply to an earlier check cannot
    // pass for this one (it no longer matches the table).
    const round = (s.round[id] + 1) >>> 0;
    s.round[id] = round;
    this.slots.rearmSlot(slot, this.sportLo + ((slot + round) % this.sportRange));
    this.deadline[slot] = leave + b.cfg.timeout;
    if (!inflight) s.headDeadline[id] = leave + b.cfg.timeout;
    s.queue[id] |= k << (3 * inflight);
    s.inflight[id] = inflight + 1;
    this.observer?.sent?.(b, slot, from, leave);
    s.lastPlanned[id] = at;
    s.jitter[id] = b.cfg.jitter * (this.random() * 2 - 1);
    this.schedule(b, now);
    // More than one spacing behind (a stall, or an interval shorter than the
    // tick): the schedule restarts from now rather than catch up in a burst.
    if (s.nextAt[id] <= now) {
      s.lastPlanned[id] = now;
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
    const s = this.store, id = b.id, c = b.cfg, h = s.health[id];
    const interval = intervalAt(h, c.rise, c.fall, c);
    const lastPlanned = s.lastPlanned[id];
    let next = lastPlanned + (transitioning(h, c.rise, c.fall) ? interval : interval * (1 + s.jitter[id]));
    if (s.inflight[id] && h >= c.rise) next = Math.min(next, lastPlanned + c.fastinter);
    s.nextAt[id] = next < now ? now : next;
  }

  /**
   * Applies b's finished checks, oldest first: answered ones, ones past their
   * deadline, and older ones a newer answer has overtaken. Returns whether any
   * was applied. Afterwards b's oldest check in flight, if any, has a deadline
   * after `now`.
   */
  private settle(b: Backend, now: number): boolean {
    const s = this.store, id = b.id;
    let answered = s.inflight[id] - 1; // checks up to this one (oldest = 0) a newer answer has overtaken
    while (answered >= 0 && !this.slots.answered(this.queued(id, answered))) answered--;
    let settled = 0;
    while (s.inflight[id]) {
      const slot = this.queued(id, 0);
      const v = this.slots.verdict(slot);
      if (!v && settled > answered && s.headDeadline[id] > now) break;
      s.queue[id] >>>= 3;
      s.inflight[id]--;
      settled++;
      if (s.inflight[id]) s.headDeadline[id] = this.deadline[this.queued(id, 0)];
      this.complete(b, v, slot, now);
    }
    if (!settled) return false;
    if (s.inflight[id] + settled >= b.depth) s.slotFreedAt[id] = now; // a check due meanwhile could not leave before now
    this.schedule(b, now);
    return true;
  }

  /** The reason code of a verdict (one string per ICMP type/code pair, made once). */
  private reasonCode(v: Verdict): number {
    if (v.state !== HO_PROBE_STATE_UNREACHABLE) return reasonToCode(reasonOf(v.state, v.icmpType, v.icmpCode));
    const k = (v.icmpType << 8) | v.icmpCode;
    return this.icmpReason[k] ||= reasonToCode(reasonOf(v.state, v.icmpType, v.icmpCode));
  }

  private complete(b: Backend, v: Verdict | null, slot: number, now: number): void {
    const s = this.store, id = b.id, c = b.cfg;
    // Straight into the row: no result object per check.
    let code: number, reason: number, rtt: number;
    if (!v) {
      code = FILTERED; reason = NO_RESPONSE; rtt = NaN;
    } else {
      code = v.state - 1; // enum ho_probe_state → PROBE_STATES
      reason = this.reasonCode(v);
      rtt = v.rttMs === null ? NaN : roundMs(v.rttMs);
      if (v.rttMs !== null) this.rtt.observe(rtt / 1000);
    }
    const ok = code === OPEN;
    const kept = rttKept(rtt);
    s.lastTs[id] = now; s.lastState[id] = code; s.lastReason[id] = reason; s.lastRttUs[id] = kept;
    s.checks[id]++;
    this.checksCompleted++;
    s.counts[id * 4 + code]++;
    s.remember(id, code, kept);
    // For check_tcp_half_open --via.
    if (ok) {
      s.okRttUs[id] = kept; s.okTtl[id] = v ? v.ttl : -1;
    } else {
      s.failState[id] = code; s.failReason[id] = reason; s.failRttUs[id] = kept; s.failTtl[id] = v ? v.ttl : -1;
    }
    if (this.observer?.applied) this.observer.applied(b, b.last!, slot);
    const first = s.firstDecides[id] === 1;
    if (first) {
      s.firstDecides[id] = 0;
      // Fully up or fully down: rise/fall from here on.
      s.health[id] = ok ? healthMax(c.rise, c.fall) : 0;
      s.streak[id] = ok ? 1 : -1;
    } else {
      s.streak[id] = streakKept(streakAfter(s.streak[id], ok));
      s.health[id] = healthAfter(s.health[id], ok, c.rise, c.fall);
    }
    if (!ok && c.logFailures) {
      const r = b.reported;
      this.event(b, 'check', r, r, reasonOfCode(reason), Number.isNaN(rtt) ? null : rtt, now);
    }
    this.report(b, now);
    if (first) this.emit('first-check', b);
  }

  /**
   * Reports b's state when it changed: a rise/fall transition after its
   * latest check, or its latest check going stale or fresh again.
   */
  private report(b: Backend, now: number): void {
    const to = b.effectiveState(now);
    const s = this.store, id = b.id;
    const from = s.reported[id] ? 'up' : 'down';
    if (to === from) return;
    s.reported[id] = to === 'up' ? 1 : 0;
    s.changes[id]++;
    s.since[id] = now;
    if (to === 'up') s.upAt[id] = now;
    const why = to === 'down' ? b.downReason(now) : null;
    const has = s.lastState[id] !== NO_STATE;
    const rtt = rttOfKept(s.lastRttUs[id]);
    this.event(b, 'state', from, to, why ?? (has ? reasonOfCode(s.lastReason[id]) : 'stale'), why || !has || Number.isNaN(rtt) ? null : rtt, now);
  }

  /** Emits one event (state, admin or check) about b, with its current streak. */
  private event(b: Backend, event: ChangeEvent['event'], from: ChangeEvent['from'], to: ChangeEvent['to'], reason: string, rttMs: number | null, now: number): void {
    const streak = this.store.streak[b.id];
    const ev: ChangeEvent = {
      event, time: new Date(now).toISOString(), backend: b.cfg.name, address: b.address, port: b.cfg.port,
      from, to, reason, rtt_ms: rttMs, consecutive: { successes: Math.max(0, streak), failures: Math.max(0, -streak) },
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
    if (this.free.length < depthFor(cfg)) throw new Error('probe table full');
    const b = this.view(cfg, addr, now);
    b.firstDecides = true;
    b.nextAt = now;
    b.lastPlanned = now - cfg.interval;
    this.allocate([b]);
    this.backends.set(cfg.name, b);
    this.generation++;
    if (this.byTarget) this.indexTarget(this.byTarget, b);
    const tick = tickFor([cfg]);
    if (tick < this.tickMs) this.setTick(tick);
    this.wake(b);
    this.report(b, now);
    return b;
  }

  /** Drops one backend (a learned one nobody asked about); false when there is none of that name. */
  forget(name: string): boolean {
    const b = this.backends.get(name);
    if (!b) return false;
    this.drop(b);
    this.backends.delete(name);
    this.byTarget = null;
    this.generation++;
    return true;
  }

  /** The XDP program's counters (enum ho_counter) since the current engine loaded it. */
  xdpCounters(): Record<string, number> { return this.slots.counters(); }

  /** Swaps in a new probe table (a larger one after a reload); backends keep their state. */
  replaceSlots(slots: ProbeSlots): void {
    this.slots = slots;
    this.deadline = this.emptyTable(slots.capacity);
    this.owner = new Int32Array(slots.capacity);
    if (this.onDemand) {
      this.free.dropBottom(this.onDemand.size);
      this.onDemand.replace(slots, slots.capacity - this.onDemand.size);
    }
    const s = this.store;
    const list = [...this.backends.values()];
    for (const b of list) {
      // Checks in flight in the old table are dropped, not counted.
      this.checksDropped += s.inflight[b.id];
      s.inflight[b.id] = 0; s.queue[b.id] = 0; s.clearSlots(b.id);
    }
    this.allocate(list.filter((b) => b.addr !== null));
    for (const b of list) this.wake(b);
  }
}
