// One backend as `halfopen serve` tracks it: its config and address, its
// probe-table slots and the checks in flight in them, its health (rise/fall),
// counters and a short history of results. The scheduler that drives it is
// src/daemon/monitor.ts.
import { formatAddress } from '../targets/address';
import { roundMs, ProbeState } from '../types';
import { BackendConfig } from './config';
import { Health, HealthState } from './health';
import { PROBE_STATES } from '../contract.generated';

/** How one completed check ended (filtered = no reply within the timeout). */
export interface CheckOutcome {
  ok: boolean;
  state: ProbeState;
  reason: string;
  rtt_ms: number | null;
  /** When it completed, ms since the epoch. */
  ts: number;
}

/** Administrative state, as HAProxy's agent and runtime API know it. */
export type AdminState = 'ready' | 'drain' | 'maint';
export const ADMIN_STATES: readonly AdminState[] = ['ready', 'drain', 'maint'];

export interface ChangeEvent {
  /** state: up/down changed; admin: ready/drain/maint changed; check: a failed check (log_failures). */
  event: 'state' | 'admin' | 'check';
  time: string;
  backend: string;
  address: string;
  port: number;
  /** HealthState for state and check events, AdminState for admin events. */
  from: HealthState | AdminState;
  to: HealthState | AdminState;
  /**
   * The check's reason (syn-ack, rst, no-response, icmp-…), `stale` when no
   * check completed in time, `unresolved` when the name has no address,
   * `maint` in maintenance, or `admin` for admin events.
   */
  reason: string;
  rtt_ms: number | null;
  consecutive: { successes: number; failures: number };
}

/** Most checks of one backend in flight at once. */
export const MAX_DEPTH = 8;

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

/** Longest scheduling tick (monitor.ts tickFor). */
export const MAX_TICK_MS = 50;

/**
 * How old the latest completed check may be before the backend is no longer
 * reported up: two intervals (one check may be lost, or late by its jitter),
 * the timeout the next one may wait, and two ticks (a check leaves and its
 * timeout is seen up to one tick late each). An up backend is checked at
 * `interval`, or faster (fastinter) while it changes state.
 */
export function staleAfter(c: BackendConfig): number {
  return 2 * Math.max(c.interval, c.fastinter) + c.timeout + 2 * MAX_TICK_MS;
}

const HISTORY = 30;
const STATE_CODE = Object.fromEntries(PROBE_STATES.map((s, i) => [s, i])) as Record<ProbeState, number>;

/** Share of the weight a backend gets the moment it comes up with slow start. */
export const SLOWSTART_FLOOR = 0.1;

export class Backend {
  readonly cfg: BackendConfig;
  /** null while the host name resolves to nothing (the backend is down, reason unresolved). */
  addr: bigint | null;
  address: string;
  readonly health: Health;
  readonly depth: number;
  readonly staleMs: number;
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
  /** When the newest check was due; the next is due an interval after that. */
  lastPlanned = 0;
  /** This check's jitter, a fraction of the interval (-cfg.jitter..cfg.jitter). */
  jitter = 0;
  /** Checks sent; each gets a new source port. */
  round = 0;
  /** When a slot last freed with every slot in flight: a check due before then could not leave earlier. */
  slotFreedAt = 0;
  last: CheckOutcome | null = null;
  /** When this backend was configured (or left maintenance): freshness counts from here until a check completes. */
  born: number;
  /** When the reported state last changed. */
  since: number;
  /** The state last reported (API, agent, events): health, unless stale, unresolved or in maintenance. */
  reported: HealthState;
  admin: AdminState = 'ready';
  /** When the backend last came up (slow start ramps from here), 0 when never in this process. */
  upAt = 0;
  /** Why the name has no address (resolver error), while addr is null. */
  unresolved = '';
  readonly counts: Record<ProbeState, number> = { open: 0, closed: 0, filtered: 0, unreachable: 0 };
  changes = 0;
  checks = 0;
  /** Heap bookkeeping: entries carrying an older version are stale. */
  version = 0;
  /**
   * What check_tcp_half_open --via prints from (plugin-socket.ts): the latest
   * answered check (RTT, TTL), shown while the backend is up, and the latest
   * failed one, shown while it is down.
   */
  okRttMs = -1;
  okTtl = -1;
  failState: ProbeState | null = null;
  failReason = '';
  failRttMs = -1;
  failTtl = -1;
  /** A learned backend: its first check alone decides its health (Monitor.learn). */
  firstDecides = false;
  /** Recent results, oldest first, packed: 30 checks cost 150 bytes, not 30 objects. */
  private readonly histState = new Uint8Array(HISTORY);
  private readonly histRtt = new Float32Array(HISTORY);
  private histLen = 0;
  private histPos = 0;

  constructor(cfg: BackendConfig, addr: bigint | null, now: number, keep?: Backend) {
    this.cfg = cfg;
    this.addr = addr;
    this.address = addr === null ? '' : formatAddress(addr);
    this.health = keep?.health ?? new Health(cfg.rise, cfg.fall, cfg.initial);
    this.depth = depthFor(cfg);
    this.staleMs = staleAfter(cfg);
    this.born = keep?.born ?? now;
    this.since = keep?.since ?? now;
    this.reported = keep?.reported ?? (addr === null ? 'down' : this.health.state);
    if (keep) {
      this.admin = keep.admin;
      this.upAt = keep.upAt;
      this.last = keep.last && { ...keep.last };
      Object.assign(this.counts, keep.counts);
      this.changes = keep.changes;
      this.checks = keep.checks;
      this.histState.set(keep.histState);
      this.histRtt.set(keep.histRtt);
      this.histLen = keep.histLen;
      this.histPos = keep.histPos;
      this.okRttMs = keep.okRttMs; this.okTtl = keep.okTtl;
      this.failState = keep.failState; this.failReason = keep.failReason; this.failRttMs = keep.failRttMs; this.failTtl = keep.failTtl;
      this.firstDecides = keep.firstDecides;
    }
  }

  /** Health after rise/fall; see state for what is reported. */
  get healthState(): HealthState { return this.health.state; }

  /**
   * The state to report now: up only while the health is up and the latest
   * check is fresh. Worked out on every read, so the API, metrics and agent
   * say down for a stale backend even if the scheduler itself has stopped.
   */
  get state(): HealthState { return this.effectiveState(Date.now()); }

  /** Age of the latest completed check, counted from this process's start at most (a restored one is as old as the start). */
  checkAge(now: number): number { return now - Math.max(this.last?.ts ?? 0, this.born); }

  /** Whether the latest completed check (or, before the first, the start) is older than staleMs. */
  isStale(now: number): boolean { return this.checkAge(now) > this.staleMs; }

  /** What should be reported now: up only when measured up recently, with an address, and not in maintenance. */
  effectiveState(now: number): HealthState {
    return this.health.state === 'up' && !this.isStale(now) && this.addr !== null && this.admin !== 'maint' ? 'up' : 'down';
  }

  /** Why it is reported down when its health is not the reason. */
  downReason(now: number): string | null {
    if (this.admin === 'maint') return 'maint';
    if (this.addr === null) return 'unresolved';
    if (this.health.state === 'up' && this.isStale(now)) return 'stale';
    return null;
  }

  /**
   * The weight to announce, as a percentage of the configured one (HAProxy's
   * agent weight): `weight` (100 when unset), ramped linearly from 10 % to
   * full over `slowstart` after the backend last came up.
   */
  weightNow(now: number): number {
    const full = this.cfg.weight ?? 100;
    if (!this.cfg.slowstart || !this.upAt || this.reported !== 'up') return full;
    const share = Math.min(1, Math.max(SLOWSTART_FLOOR, (now - this.upAt) / this.cfg.slowstart));
    return share >= 1 ? full : Math.max(1, Math.round(full * share));
  }

  /** Whether slow start is under way (the announced weight is below the configured one). */
  rampingUp(now: number): boolean { return this.weightNow(now) < (this.cfg.weight ?? 100); }

  /** Notes a completed check for the plugin socket; ttl of the reply, -1 without one. */
  notePlugin(r: CheckOutcome, ttl: number): void {
    if (r.ok) {
      this.okRttMs = r.rtt_ms ?? -1;
      this.okTtl = ttl;
    } else {
      this.failState = r.state;
      this.failReason = r.reason;
      this.failRttMs = r.rtt_ms ?? -1;
      this.failTtl = ttl;
    }
  }

  remember(r: CheckOutcome): void {
    this.histState[this.histPos] = STATE_CODE[r.state];
    this.histRtt[this.histPos] = r.rtt_ms ?? NaN;
    this.histPos = (this.histPos + 1) % HISTORY;
    if (this.histLen < HISTORY) this.histLen++;
  }

  history(): Array<{ ok: boolean; state: ProbeState; rtt_ms: number | null }> {
    const out = [];
    for (let k = 0; k < this.histLen; k++) {
      const i = (this.histPos - this.histLen + k + HISTORY) % HISTORY;
      const state = PROBE_STATES[this.histState[i]];
      const rtt = this.histRtt[i];
      out.push({ ok: state === 'open', state, rtt_ms: Number.isNaN(rtt) ? null : roundMs(rtt) });
    }
    return out;
  }

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

/** Same backend, same check: reload keeps its state. */
export function sameBackend(a: BackendConfig, b: BackendConfig): boolean {
  return a.name === b.name && a.host === b.host && a.port === b.port && a.rise === b.rise && a.fall === b.fall;
}

/** Every field equal (labels compared by value): a reload leaves such a backend exactly as it is. */
export function sameConfig(a: BackendConfig, b: BackendConfig): boolean {
  const keys = Object.keys(a) as Array<keyof BackendConfig>;
  if (keys.length !== Object.keys(b).length) return false;
  for (const k of keys) {
    const x = a[k], y = b[k];
    if (x === y) continue;
    if (!x || !y || typeof x !== 'object' || typeof y !== 'object') return false;
    const kx = Object.keys(x), ky = Object.keys(y);
    if (kx.length !== ky.length || kx.some((j) => (x as Record<string, unknown>)[j] !== (y as Record<string, unknown>)[j])) return false;
  }
  return true;
}
