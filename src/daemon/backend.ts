// One backend as `halfopen serve` tracks it: its config and address, its
// probe-table slots and the checks in flight in them, its health (rise/fall),
// counters and a short history of results. The numbers live in a row of a
// BackendStore (backend-store.ts); a Backend is the object view of one row
// that the API, metrics, agent and push read. The scheduler that drives it
// is src/daemon/monitor.ts.
import { formatAddress } from '../targets/address';
import { roundMs, ProbeState } from '../types';
import { BackendConfig } from './config';
import { HealthState, clampHealth, healthMax, healthState, intervalAt, transitioning, HealthTimers } from './health';
import { PROBE_STATES } from '../contract.generated';
import { BackendStore, HISTORY, MAX_DEPTH, NO_STATE, histCode, histRttMs, reasonOfCode, reasonToCode, rttKept, rttOfKept, streakKept } from './backend-store';

const noneAsMinus1 = (ms: number): number => (Number.isNaN(ms) ? -1 : ms);

export { MAX_DEPTH };

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

const STATE_CODE = Object.fromEntries(PROBE_STATES.map((s, i) => [s, i])) as Record<ProbeState, number>;
const ADMIN_CODE: Record<AdminState, number> = { ready: 0, drain: 1, maint: 2 };

/** Share of the weight a backend gets the moment it comes up with slow start. */
export const SLOWSTART_FLOOR = 0.1;

/** Where standalone Backends (made outside a Monitor) keep their numbers. */
const LOOSE = new BackendStore(16);

/** A backend's rise/fall, read from and written to its row (the arithmetic is health.ts's). */
export class HealthView {
  constructor(private readonly s: BackendStore, private readonly id: number, readonly rise: number, readonly fall: number) {}
  get state(): HealthState { return healthState(this.s.health[this.id], this.rise); }
  get health(): number { return this.s.health[this.id]; }
  get successes(): number { return Math.max(0, this.s.streak[this.id]); }
  get failures(): number { return Math.max(0, -this.s.streak[this.id]); }
  get streakValue(): number { return this.s.streak[this.id]; }
  get transitioning(): boolean { return transitioning(this.s.health[this.id], this.rise, this.fall); }
  /** Puts back a saved health level and streak (clamped to this rise/fall). */
  restore(health: number, streak: number): void {
    this.s.health[this.id] = clampHealth(health, this.rise, this.fall);
    this.s.streak[this.id] = streakKept(streak);
  }
  nextInterval(t: HealthTimers): number { return intervalAt(this.s.health[this.id], this.rise, this.fall, t); }
}

export class Backend {
  readonly cfg: BackendConfig;
  /** null while the host name resolves to nothing (the backend is down, reason unresolved). */
  addr: bigint | null;
  /** Why the name has no address (resolver error), while addr is null. */
  unresolved = '';
  /** The store holding this backend's row, and the row. */
  store: BackendStore;
  id: number;

  /**
   * A backend in `store` (a standalone one when absent). With `keep`, the
   * same record goes on under a new config or address: this view takes over
   * keep's row (history, health, counters, schedule), and keep is retired.
   */
  constructor(cfg: BackendConfig, addr: bigint | null, now: number, keep?: Backend, store?: BackendStore) {
    this.cfg = cfg;
    this.addr = addr;
    if (keep) {
      this.store = keep.store;
      this.id = keep.id;
      this.unresolved = keep.unresolved;
      keep.retire();
      const s = this.store;
      // A health level saved under another rise/fall is put back within this one.
      s.health[this.id] = clampHealth(s.health[this.id], cfg.rise, cfg.fall);
      return;
    }
    const s = this.store = store ?? LOOSE;
    const id = this.id = s.alloc();
    s.health[id] = cfg.initial === 'up' ? healthMax(cfg.rise, cfg.fall) : 0;
    s.born[id] = now;
    s.since[id] = now;
    s.reported[id] = addr !== null && cfg.initial === 'up' ? 1 : 0;
  }

  /** Checks that may be in flight at once (derived from the config, not kept: a view per backend is 16 B smaller). */
  get depth(): number { return depthFor(this.cfg); }
  /** How old the latest check may be before the backend is stale. */
  get staleMs(): number { return staleAfter(this.cfg); }

  /** Points this view at the store's neutral row: its record went on under another view, or was dropped. */
  retire(): void { this.id = 0; }

  /** Whether this view still has its record. */
  get live(): boolean { return this.id !== 0; }

  /** A stable identity of the record across reloads (a new view keeps it; a new record gets a new one). */
  get record(): number { return this.store.serial[this.id]; }

  /** The address as text ('' while unresolved). */
  get address(): string { return this.addr === null ? '' : formatAddress(this.addr); }

  get health(): HealthView { return new HealthView(this.store, this.id, this.cfg.rise, this.cfg.fall); }
  /** Health after rise/fall; see state for what is reported. */
  get healthState(): HealthState { return healthState(this.store.health[this.id], this.cfg.rise); }

  get nextAt(): number { return this.store.nextAt[this.id]; }
  set nextAt(v: number) { this.store.nextAt[this.id] = v; }
  get lastPlanned(): number { return this.store.lastPlanned[this.id]; }
  set lastPlanned(v: number) { this.store.lastPlanned[this.id] = v; }
  get headDeadline(): number { return this.store.headDeadline[this.id]; }
  get inflight(): number { return this.store.inflight[this.id]; }
  get born(): number { return this.store.born[this.id]; }
  set born(v: number) { this.store.born[this.id] = v; }
  /** When the reported state last changed. */
  get since(): number { return this.store.since[this.id]; }
  set since(v: number) { this.store.since[this.id] = v; }
  /** When the backend last came up (slow start ramps from here), 0 when never in this process. */
  get upAt(): number { return this.store.upAt[this.id]; }
  set upAt(v: number) { this.store.upAt[this.id] = v; }
  get changes(): number { return this.store.changes[this.id]; }
  set changes(v: number) { this.store.changes[this.id] = v; }
  get checks(): number { return this.store.checks[this.id]; }
  set checks(v: number) { this.store.checks[this.id] = v; }
  /** A learned backend: its first check alone decides its health (Monitor.learn). */
  get firstDecides(): boolean { return this.store.firstDecides[this.id] === 1; }
  set firstDecides(v: boolean) { this.store.firstDecides[this.id] = v ? 1 : 0; }

  /** The state last reported (API, agent, events): health, unless stale, unresolved or in maintenance. */
  get reported(): HealthState { return this.store.reported[this.id] ? 'up' : 'down'; }
  set reported(v: HealthState) { this.store.reported[this.id] = v === 'up' ? 1 : 0; }
  get admin(): AdminState { return ADMIN_STATES[this.store.admin[this.id]]; }
  set admin(v: AdminState) { this.store.admin[this.id] = ADMIN_CODE[v]; }

  /** Probe-table slots of this backend, one per check that may be in flight (depthFor). */
  get slots(): number[] {
    const s = this.store, out: number[] = [];
    for (let k = 0; k < s.nslots[this.id]; k++) out.push(s.slotOf(this.id, k));
    return out;
  }

  /** Completed checks by result state. */
  get counts(): Record<ProbeState, number> {
    const c = this.store.counts, o = this.id * 4;
    return { open: c[o], closed: c[o + 1], filtered: c[o + 2], unreachable: c[o + 3] };
  }
  set counts(v: Record<ProbeState, number>) {
    const c = this.store.counts, o = this.id * 4;
    c[o] = v.open ?? 0; c[o + 1] = v.closed ?? 0; c[o + 2] = v.filtered ?? 0; c[o + 3] = v.unreachable ?? 0;
  }

  /** The latest completed check, or null before the first (a fresh object per read). */
  get last(): CheckOutcome | null {
    const s = this.store, id = this.id, code = s.lastState[id];
    if (code === NO_STATE) return null;
    const rtt = rttOfKept(s.lastRttUs[id]);
    return { ok: code === 0, state: PROBE_STATES[code], reason: reasonOfCode(s.lastReason[id]), rtt_ms: Number.isNaN(rtt) ? null : rtt, ts: s.lastTs[id] };
  }
  set last(r: CheckOutcome | null) {
    const s = this.store, id = this.id;
    if (!r) { s.lastState[id] = NO_STATE; s.lastTs[id] = 0; s.lastRttUs[id] = 0; s.lastReason[id] = 0; return; }
    s.lastState[id] = STATE_CODE[r.state] ?? STATE_CODE.filtered;
    s.lastReason[id] = reasonToCode(r.reason);
    s.lastRttUs[id] = rttKept(r.rtt_ms ?? NaN);
    s.lastTs[id] = r.ts;
  }

  /**
   * What check_tcp_half_open --via prints from (plugin-socket.ts): the latest
   * answered check (RTT, TTL), shown while the backend is up, and the latest
   * failed one, shown while it is down. -1: none.
   */
  get okRttMs(): number { return noneAsMinus1(rttOfKept(this.store.okRttUs[this.id])); }
  get okTtl(): number { return this.store.okTtl[this.id]; }
  get failState(): ProbeState | null { const c = this.store.failState[this.id]; return c === NO_STATE ? null : PROBE_STATES[c]; }
  get failReason(): string { return reasonOfCode(this.store.failReason[this.id]); }
  get failRttMs(): number { return noneAsMinus1(rttOfKept(this.store.failRttUs[this.id])); }
  get failTtl(): number { return this.store.failTtl[this.id]; }

  /**
   * The state to report now: up only while the health is up and the latest
   * check is fresh. Worked out on every read, so the API, metrics and agent
   * say down for a stale backend even if the scheduler itself has stopped.
   */
  get state(): HealthState { return this.effectiveState(Date.now()); }

  /** Age of the latest completed check, counted from this process's start at most (a restored one is as old as the start). */
  checkAge(now: number): number { return now - this.freshFrom(); }

  /** What freshness counts from: the latest completed check, or the start when that is later. */
  private freshFrom(): number { return Math.max(this.store.lastTs[this.id], this.store.born[this.id]); }

  /** Whether the latest completed check (or, before the first, the start) is older than staleMs. */
  isStale(now: number): boolean { return this.checkAge(now) > this.staleMs; }

  /** The first whole millisecond at which isStale() holds, unless a check completes first. */
  staleAt(): number { return this.freshFrom() + this.staleMs + 1; }

  /** What should be reported now: up only when measured up recently, with an address, and not in maintenance. */
  effectiveState(now: number): HealthState {
    return this.healthState === 'up' && !this.isStale(now) && this.addr !== null && this.store.admin[this.id] !== ADMIN_CODE.maint ? 'up' : 'down';
  }

  /** Why it is reported down when its health is not the reason. */
  downReason(now: number): string | null {
    if (this.admin === 'maint') return 'maint';
    if (this.addr === null) return 'unresolved';
    if (this.healthState === 'up' && this.isStale(now)) return 'stale';
    return null;
  }

  /**
   * The weight to announce, as a percentage of the configured one (HAProxy's
   * agent weight): `weight` (100 when unset), ramped linearly from 10 % to
   * full over `slowstart` after the backend last came up.
   */
  weightNow(now: number): number {
    const full = this.cfg.weight ?? 100;
    const upAt = this.upAt;
    if (!this.cfg.slowstart || !upAt || this.reported !== 'up') return full;
    const share = Math.min(1, Math.max(SLOWSTART_FLOOR, (now - upAt) / this.cfg.slowstart));
    return share >= 1 ? full : Math.max(1, Math.round(full * share));
  }

  /** Whether slow start is under way (the announced weight is below the configured one). */
  rampingUp(now: number): boolean { return this.weightNow(now) < (this.cfg.weight ?? 100); }

  history(): Array<{ ok: boolean; state: ProbeState; rtt_ms: number | null }> {
    const s = this.store, id = this.id, len = s.histLen[id], pos = s.histPos[id];
    const out = [];
    for (let k = 0; k < len; k++) {
      const i = id * HISTORY + ((pos - len + k + HISTORY) % HISTORY);
      const e = s.hist[i];
      const state = PROBE_STATES[histCode(e)];
      const rtt = histRttMs(e);
      out.push({ ok: state === 'open', state, rtt_ms: Number.isNaN(rtt) ? null : roundMs(rtt) });
    }
    return out;
  }
}

/** Same backend, same check: reload keeps its state. */
export function sameBackend(a: BackendConfig, b: BackendConfig): boolean {
  return a.name === b.name && a.host === b.host && a.port === b.port && a.rise === b.rise && a.fall === b.fall;
}

/** Every field equal (labels compared by value): a reload leaves such a backend exactly as it is. No arrays: a reload compares 100,000 pairs. */
export function sameConfig(a: BackendConfig, b: BackendConfig): boolean {
  const x = a as unknown as Record<string, unknown>, y = b as unknown as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    n++;
    const p = x[k], q = y[k];
    if (p === q) { if (p !== undefined || k in y) continue; return false; }
    if (!p || !q || typeof p !== 'object' || typeof q !== 'object' || !sameFlat(p as Record<string, unknown>, q as Record<string, unknown>)) return false;
  }
  for (const _ in y) n--;
  return n === 0;
}

/** Same keys, same values (one level). */
function sameFlat(x: Record<string, unknown>, y: Record<string, unknown>): boolean {
  let n = 0;
  for (const k in x) { if (x[k] !== y[k] || !(k in y)) return false; n++; }
  for (const _ in y) n--;
  return n === 0;
}
