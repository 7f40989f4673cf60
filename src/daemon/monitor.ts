// The health-check loop of `halfopen serve`. Every backend owns a few slots
// of the engine's probe table (depthFor): one per check that may be in flight
// at once. Each tick (10–100 ms, see tickFor): verdicts that landed in the
// kernel are applied, checks past their timeout fail, and the checks that are
// due go out in one batch through the sender pool. A silent backend only
// costs its own timeout; nothing waits for it.
//
// A backend checks from its first slot whenever that one is free, so a
// healthy fleet touches one slot per backend, adjacent in the table; the
// others carry checks that overlap. Checks are due on their own clock, not after the previous one finished:
// the next is due one interval (fastinter, downinter) after the previous was
// due, even while that one still waits for its reply. An up backend whose
// latest check is still unanswered one fastinter after it was due is suspect:
// its next check goes out then, without waiting for the timeout. So a backend
// that falls silent is down (fall - 1) x fastinter + timeout after the first
// unanswered check, not fall x timeout. Results are applied in the order the
// checks were sent, each check exactly once: an answer to a newer check
// settles every older one still waiting as unanswered.
import { EventEmitter } from 'node:events';
import { Engine } from '../engine/engine';
import { Verdict, describeVerdict } from '../engine/probe-table';
import { roundMs } from '../types';
import { formatAddress } from '../targets/address';
import { BackendConfig } from '../health/config';
import { Health, HealthState } from '../health/state-machine';
import { ProbeState } from '../types';

export type CheckState = ProbeState; // filtered = no reply within the timeout

export interface CheckResult {
  ok: boolean;
  state: CheckState;
  reason: string;
  rtt_ms: number | null;
  ts: number;
}

export interface ChangeEvent {
  time: string;
  backend: string;
  address: string;
  port: number;
  from: HealthState;
  to: HealthState;
  reason: string;
  rtt_ms: number | null;
  consecutive: { successes: number; failures: number };
}

export class Backend {
  readonly cfg: BackendConfig;
  readonly addr: bigint;
  readonly address: string;
  readonly health: Health;
  /** Probe-table slots, one per check that may be in flight (depthFor); slot0 = slots[0]. */
  slots: number[] = [];
  slot0 = -1;
  /**
   * Checks in flight, oldest first, as indices into slots packed 3 bits each
   * (depth <= 8): scalars, so the hot path touches no extra objects.
   */
  inflight = 0;
  queue = 0;
  /** When the oldest check in flight fails unanswered. */
  headDeadline = 0;
  /** When the next check is due. */
  nextAt = 0;
  /** Checks sent; each gets a new source port. */
  round = 0;
  readonly depth: number;
  /** When the newest check was due; the next is due an interval after that. */
  lastPlanned = 0;
  last: CheckResult | null = null;
  since = Date.now();
  readonly counts: Record<CheckState, number> = { open: 0, closed: 0, filtered: 0, unreachable: 0 };
  changes = 0;
  checks = 0;
  /** Recent results, oldest first, packed: 30 checks cost 150 bytes, not 30 objects. */
  private readonly histState = new Uint8Array(HISTORY);
  private readonly histRtt = new Float32Array(HISTORY);
  private histLen = 0;
  private histPos = 0;
  /** Heap bookkeeping: entries carrying an older version are stale. */
  version = 0;

  constructor(cfg: BackendConfig, addr: bigint, keep?: Backend) {
    this.cfg = cfg;
    this.addr = addr;
    this.address = formatAddress(addr);
    this.health = keep?.health ?? new Health(cfg.rise, cfg.fall, cfg.initial);
    this.depth = depthFor(cfg);
    if (keep) {
      this.last = keep.last && { ...keep.last };
      this.since = keep.since;
      Object.assign(this.counts, keep.counts);
      this.changes = keep.changes;
      this.checks = keep.checks;
      this.histState.set(keep.histState);
      this.histRtt.set(keep.histRtt);
      this.histLen = keep.histLen;
      this.histPos = keep.histPos;
    }
  }

  remember(r: CheckResult): void {
    this.histState[this.histPos] = STATE_CODE[r.state];
    this.histRtt[this.histPos] = r.rtt_ms ?? NaN;
    this.histPos = (this.histPos + 1) % HISTORY;
    if (this.histLen < HISTORY) this.histLen++;
  }

  history(): Array<{ ok: boolean; state: CheckState; rtt_ms: number | null }> {
    const out = [];
    for (let k = 0; k < this.histLen; k++) {
      const i = (this.histPos - this.histLen + k + HISTORY) % HISTORY;
      const state = STATES[this.histState[i]];
      const rtt = this.histRtt[i];
      out.push({ ok: state === 'open', state, rtt_ms: Number.isNaN(rtt) ? null : roundMs(rtt) });
    }
    return out;
  }

  get state(): HealthState { return this.health.state; }
  /** Index into slots of the i-th check in flight, oldest first. */
  queuedIndex(i: number): number { return (this.queue >>> (3 * i)) & 7; }
  /** Slot of the i-th check in flight, oldest first. */
  queued(i: number): number {
    const k = this.queuedIndex(i);
    return k === 0 ? this.slot0 : this.slots[k];
  }
  /** Whether slots[k] carries a check in flight. */
  isQueued(k: number): boolean {
    for (let i = 0; i < this.inflight; i++) if (this.queuedIndex(i) === k) return true;
    return false;
  }
}

/** Most checks of one backend in flight at once. */
const MAX_DEPTH = 8;
/**
 * Slots a backend needs: checks go out at the shortest of its intervals and
 * each waits up to its timeout, so timeout / spacing + 1 may overlap
 * (a 500 ms timeout at a 250 ms fastinter: 3; a timeout shorter than every
 * interval: 1). Beyond MAX_DEPTH the next check waits for a slot.
 */
export function depthFor(c: BackendConfig): number {
  const spacing = Math.max(1, Math.min(c.interval, c.fastinter, c.downinter));
  return Math.min(MAX_DEPTH, Math.floor(c.timeout / spacing) + 1);
}

const HISTORY = 30;
/**
 * Scheduling period: a tenth of the shortest interval or a fifth of the
 * shortest timeout, within 10–100 ms. A tick batches every due check; what
 * it costs is mostly per tick (a task post to the sender thread, a ring
 * poll, and caches gone cold since the last one), so fewer, larger ticks are
 * cheaper: at 10,000 backends / 1 s, 100 ms ticks took 8.2–9.4 % of a core
 * against 9.3–10.8 % at 50 ms (and 10.6 % at 20 ms). A check starts at most
 * one tick late (within the default 10 % jitter of its interval) and a
 * timeout is seen at most one tick late.
 */
export function tickFor(backends: Iterable<BackendConfig>): number {
  let shortest = Infinity;
  for (const b of backends) shortest = Math.min(shortest, b.interval / 10, b.timeout / 5);
  return Math.min(100, Math.max(10, Math.floor(shortest)));
}
const STATES: CheckState[] = ['open', 'closed', 'filtered', 'unreachable'];
const STATE_CODE: Record<CheckState, number> = { open: 0, closed: 1, filtered: 2, unreachable: 3 };
/** Window over which halfopen_schedule_lag_seconds reports the worst lateness. */
const LAG_WINDOW_MS = 10_000;

/** Min-heap of (time, backend, version): the next moment each backend needs attention. */
class WakeHeap {
  private t: number[] = [];
  private b: Backend[] = [];
  private v: number[] = [];
  get size(): number { return this.t.length; }
  peek(): number { return this.t.length ? this.t[0] : Infinity; }
  push(time: number, backend: Backend): void {
    let i = this.t.length;
    this.t.push(time); this.b.push(backend); this.v.push(backend.version);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.t[p] <= this.t[i]) break;
      this.swap(i, p);
      i = p;
    }
  }
  /** Pops the earliest entry still current (its backend's version unchanged). */
  pop(): Backend | null {
    while (this.t.length) {
      const b = this.b[0], v = this.v[0];
      const lt = this.t.pop()!, lb = this.b.pop()!, lv = this.v.pop()!;
      if (this.t.length) {
        this.t[0] = lt; this.b[0] = lb; this.v[0] = lv;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1, r = l + 1;
          let m = i;
          if (l < this.t.length && this.t[l] < this.t[m]) m = l;
          if (r < this.t.length && this.t[r] < this.t[m]) m = r;
          if (m === i) break;
          this.swap(i, m);
          i = m;
        }
      }
      if (b.version === v) return b;
    }
    return null;
  }
  clear(): void { this.t = []; this.b = []; this.v = []; }
  private swap(i: number, j: number): void {
    // Temporaries, not destructuring: [a, b] = [b, a] allocates an array each time.
    const t = this.t[i]; this.t[i] = this.t[j]; this.t[j] = t;
    const b = this.b[i]; this.b[i] = this.b[j]; this.b[j] = b;
    const v = this.v[i]; this.v[i] = this.v[j]; this.v[j] = v;
  }
}

/** Same backend, same check: reload keeps its state. */
export function sameBackend(a: BackendConfig, b: BackendConfig): boolean {
  return a.name === b.name && a.host === b.host && a.port === b.port && a.rise === b.rise && a.fall === b.fall;
}

export class Monitor extends EventEmitter {
  private engine: Engine;
  private readonly bySlot: (Backend | undefined)[] = [];
  private readonly free: number[] = [];
  /** Per slot: when its check in flight fails unanswered. */
  private deadline: Float64Array;
  private backends = new Map<string, Backend>();
  private timer: NodeJS.Timeout | null = null;
  private tickMs = 50;
  private readonly heap = new WakeHeap();
  private lagCur = 0;
  private lagPrev = 0;
  private lagWindowStart = Date.now();
  private sending = false;
  private readonly sportLo: number;
  private readonly sportRange: number;
  /** Round-trip histogram of answered checks (seconds), Prometheus buckets. */
  readonly buckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
  readonly bucketCounts = new Array(this.buckets.length + 1).fill(0);
  rttSum = 0;
  rttCount = 0;
  checksSent = 0;

  constructor(engine: Engine, sportLo: number, sportHi: number) {
    super();
    this.engine = engine;
    this.sportLo = sportLo;
    this.sportRange = sportHi - sportLo + 1;
    this.deadline = this.emptyTable(engine.capacity);
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

  /** Finds a backend by name or by "address:port" / "[v6]:port" (HAProxy agent-send). */
  find(key: string): Backend | undefined {
    const b = this.backends.get(key);
    if (b) return b;
    for (const x of this.backends.values()) {
      if (`${x.address}:${x.cfg.port}` === key || `[${x.address}]:${x.cfg.port}` === key) return x;
    }
    return undefined;
  }

  /**
   * Installs a backend set. Backends equal to a current one keep their state;
   * new ones start on a schedule spread over their interval.
   */
  apply(list: Array<{ cfg: BackendConfig; addr: bigint }>): void {
    const now = Date.now();
    const next = new Map<string, Backend>();
    list.forEach(({ cfg, addr }, i) => {
      const old = this.backends.get(cfg.name);
      const keep = old && sameBackend(old.cfg, cfg) && old.addr === addr ? old : undefined;
      const b = new Backend(cfg, addr, keep);
      if (keep && keep.depth === b.depth) {
        b.slots = keep.slots;
        b.slot0 = keep.slot0;
        b.headDeadline = keep.headDeadline;
        b.inflight = keep.inflight;
        b.nextAt = keep.nextAt;
        b.queue = keep.queue;
        b.round = keep.round;
        b.lastPlanned = keep.lastPlanned;
      } else if (keep) {
        b.nextAt = keep.nextAt; // same schedule, new slots (the timing changed)
      } else {
        // Spread first checks evenly over the interval, then jitter: no herd.
        b.nextAt = now + Math.floor((cfg.interval * (i + Math.random())) / list.length);
      }
      next.set(cfg.name, b);
    });
    for (const [name, old] of this.backends) {
      const b = next.get(name);
      if (!b || b.slots !== old.slots) this.release(old);
    }
    this.backends = next;
    this.heap.clear();
    const tick = tickFor(list.map((x) => x.cfg));
    if (tick !== this.tickMs) {
      this.tickMs = tick;
      if (this.timer) { this.stop(); this.start(); }
    }
    this.allocate([...next.values()].filter((b) => !b.slots.length));
    for (const b of next.values()) {
      for (const s of b.slots) this.bySlot[s] = b;
      this.wake(b);
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
        this.engine.setSlot(slot, b.addr, b.cfg.port, this.sportLo + (slot % this.sportRange));
      }
    }
  }

  private release(b: Backend): void {
    for (const slot of b.slots) {
      if (this.bySlot[slot] !== b) continue;
      this.engine.clearSlot(slot);
      this.bySlot[slot] = undefined;
      this.free.push(slot);
    }
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.tickMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * When b's next check is due: nextAt, or sooner for an up backend whose
   * newest check is still unanswered one fastinter after it was due (suspect).
   */
  private dueAt(b: Backend): number {
    if (b.inflight && b.health.state === 'up') return Math.min(b.nextAt, b.lastPlanned + b.cfg.fastinter);
    return b.nextAt;
  }

  /** (Re)schedules b at its next moment of interest: its next check, or its oldest check's deadline. */
  private wake(b: Backend): void {
    b.version++;
    const due = this.dueAt(b);
    this.heap.push(b.inflight ? Math.min(due, b.headDeadline) : due, b);
  }

  /** Worst lateness behind schedule over the current window, ms. */
  get lagMs(): number { return Math.max(this.lagPrev, this.lagCur); }

  /** One scheduling step; public for tests. */
  tick(now = Date.now()): void {
    if (now - this.lagWindowStart >= LAG_WINDOW_MS) {
      this.lagPrev = this.lagCur;
      this.lagCur = 0;
      this.lagWindowStart = now;
    }
    for (const slot of this.engine.pollSlots()) {
      const b = this.bySlot[slot];
      if (b && b.inflight && this.settle(b, now)) this.wake(b);
    }
    if (this.sending) return; // the due checks go out with the next batch
    const due: number[] = [];
    while (this.heap.peek() <= now) {
      const b = this.heap.pop();
      if (!b) break;
      if (b.inflight) this.settle(b, now);
      const at = this.dueAt(b);
      if (at > now || b.inflight >= b.depth) { this.wake(b); continue; } // not due, or every slot still waiting
      const late = now - at;
      if (late > this.lagCur) this.lagCur = late;
      let k = 0;
      if (b.inflight) while (b.isQueued(k)) k++;
      const slot = k === 0 ? b.slot0 : b.slots[k];
      // A new source port each round: a late reply to an earlier check cannot
      // pass for this one (it no longer matches the table).
      this.engine.rearmSlot(slot, this.sportLo + ((slot + ++b.round) % this.sportRange));
      this.deadline[slot] = now + b.cfg.timeout;
      b.lastPlanned = at;
      if (!b.inflight) b.headDeadline = now + b.cfg.timeout;
      b.queue |= k << (3 * b.inflight++);
      this.schedule(b);
      this.wake(b);
      due.push(slot);
    }
    if (due.length) {
      this.sending = true;
      this.checksSent += due.length;
      this.engine.sendSlots(Uint32Array.from(due)).then(
        () => { this.sending = false; },
        (err) => { this.sending = false; this.emit('error', err); },
      );
    }
  }

  /**
   * The next check: one interval (per the current health) after the newest
   * was due. Jitter spreads the steady schedule; fastinter steps are not
   * jittered, so a backend changing state is decided on time.
   */
  private schedule(b: Backend): void {
    const interval = b.health.nextInterval(b.cfg);
    b.nextAt = b.lastPlanned + interval;
    if (!b.health.transitioning) b.nextAt += interval * b.cfg.jitter * (Math.random() * 2 - 1);
  }

  /**
   * Applies b's finished checks, oldest first: answered ones, ones past their
   * deadline, and older ones a newer answer has overtaken. Returns whether any
   * was applied.
   */
  private settle(b: Backend, now: number): boolean {
    if (b.inflight === 1) { // the common case: one check in flight
      const v = this.engine.verdict(b.queued(0));
      if (!v && b.headDeadline > now) return false;
      b.inflight = 0;
      b.queue = 0;
      this.complete(b, v, now);
      this.schedule(b);
      return true;
    }
    let answered = b.inflight - 1; // checks up to this one (oldest = 0) a newer answer has overtaken
    while (answered >= 0 && !this.engine.answered(b.queued(answered))) answered--;
    let settled = 0;
    while (b.inflight) {
      const v = this.engine.verdict(b.queued(0));
      if (!v && settled > answered && b.headDeadline > now) break;
      b.queue >>>= 3;
      b.inflight--;
      settled++;
      if (b.inflight) b.headDeadline = this.deadline[b.queued(0)];
      this.complete(b, v, now);
    }
    if (!settled) return false;
    this.schedule(b);
    return true;
  }

  private complete(b: Backend, v: Verdict | null, now: number): void {
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
      if (d.rttMs !== null) this.observe(d.rttMs / 1000);
    }
    b.checks++;
    b.counts[r.state]++;
    b.remember(r);
    const t = b.health.record(r.ok);
    if (t) {
      b.changes++;
      b.since = now;
      const ev: ChangeEvent = {
        time: new Date(now).toISOString(), backend: b.cfg.name, address: b.address, port: b.cfg.port,
        from: t.from, to: t.to, reason: r.reason, rtt_ms: r.rtt_ms,
        consecutive: { successes: b.health.successes, failures: b.health.failures },
      };
      this.emit('change', ev, b);
    }
  }

  private observe(seconds: number): void {
    this.rttSum += seconds;
    this.rttCount++;
    let i = 0;
    while (i < this.buckets.length && seconds > this.buckets[i]) i++;
    this.bucketCounts[i]++;
  }

  /** The XDP program's counters (enum ho_counter) since the current engine loaded it. */
  xdpCounters(): Record<string, number> { return this.engine.counters(); }

  /** Swaps in a new engine (a larger table after a reload); backends keep their state. */
  replaceEngine(engine: Engine): void {
    this.engine = engine;
    this.deadline = this.emptyTable(engine.capacity);
    const list = [...this.backends.values()];
    for (const b of list) { b.inflight = 0; b.queue = 0; b.slots = []; } // checks in flight in the old table are dropped, not counted
    this.allocate(list);
    for (const b of list) {
      for (const s of b.slots) this.bySlot[s] = b;
      this.wake(b);
    }
  }
}
