// The health-check loop of `halfopen serve`. Every backend owns one slot of
// the engine's probe table. Each tick (10 ms): verdicts that landed in the
// kernel are applied, checks past their timeout fail, and the checks that are
// due go out in one batch through the sender pool. A silent backend only
// costs its own timeout; nothing waits for it.
import { EventEmitter } from 'node:events';
import { Engine } from '../engine/engine';
import { Verdict } from '../engine/probe-table';
import * as C from '../contract.generated';
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
  slot = -1;
  nextAt = 0;
  inflight: { sentAt: number; deadline: number } | null = null;
  last: CheckResult | null = null;
  since = Date.now();
  round = 0;
  readonly counts: Record<CheckState, number> = { open: 0, closed: 0, filtered: 0, unreachable: 0 };
  changes = 0;
  checks = 0;
  /** Worst lateness of a check behind its schedule, ms (scheduler health). */
  lagMs = 0;
  readonly history: CheckResult[] = [];

  constructor(cfg: BackendConfig, addr: bigint, keep?: Backend) {
    this.cfg = cfg;
    this.addr = addr;
    this.address = formatAddress(addr);
    this.health = keep?.health ?? new Health(cfg.rise, cfg.fall, cfg.initial);
    if (keep) {
      this.last = keep.last;
      this.since = keep.since;
      Object.assign(this.counts, keep.counts);
      this.changes = keep.changes;
      this.checks = keep.checks;
      this.history.push(...keep.history);
    }
  }

  get state(): HealthState { return this.health.state; }
}

const HISTORY = 30;
const TICK_MS = 10;

/** Same backend, same check: reload keeps its state. */
export function sameBackend(a: BackendConfig, b: BackendConfig): boolean {
  return a.name === b.name && a.host === b.host && a.port === b.port && a.rise === b.rise && a.fall === b.fall;
}

export class Monitor extends EventEmitter {
  private engine: Engine;
  private readonly bySlot: (Backend | undefined)[] = [];
  private readonly free: number[] = [];
  private backends = new Map<string, Backend>();
  private timer: NodeJS.Timeout | null = null;
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
    for (let i = engine.capacity - 1; i >= 0; i--) this.free.push(i);
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
      if (keep) {
        b.slot = keep.slot;
        b.nextAt = keep.nextAt;
        b.inflight = keep.inflight;
        b.round = keep.round;
      } else {
        // Spread first checks evenly over the interval, then jitter: no herd.
        b.nextAt = now + Math.floor((cfg.interval * (i + Math.random())) / list.length);
      }
      next.set(cfg.name, b);
    });
    for (const [name, old] of this.backends) {
      const b = next.get(name);
      if (!b || b.slot !== old.slot) this.release(old);
    }
    this.backends = next;
    for (const b of next.values()) {
      if (b.slot < 0) {
        const slot = this.free.pop();
        if (slot === undefined) throw new Error('probe table full');
        b.slot = slot;
      }
      this.bySlot[b.slot] = b;
    }
  }

  private release(b: Backend): void {
    if (b.slot < 0 || this.bySlot[b.slot] !== b) return;
    this.engine.clearSlot(b.slot);
    this.bySlot[b.slot] = undefined;
    this.free.push(b.slot);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One scheduling step; public for tests. */
  tick(now = Date.now()): void {
    for (const slot of this.engine.pollSlots()) {
      const b = this.bySlot[slot];
      if (b?.inflight) {
        const v = this.engine.verdict(slot);
        if (v) this.complete(b, v, now);
      }
    }
    const due: number[] = [];
    for (const b of this.backends.values()) {
      if (b.inflight) {
        if (now >= b.inflight.deadline) {
          const v = this.engine.verdict(b.slot); // landed without an event (ring full)
          this.complete(b, v, now);
        } else continue;
      }
      if (now < b.nextAt || this.sending) continue;
      b.lagMs = Math.max(b.lagMs, now - b.nextAt);
      // A new source port each round: a late reply to an earlier check cannot
      // pass for this one (it no longer matches the table).
      b.round++;
      this.engine.setSlot(b.slot, b.addr, b.cfg.port, this.sportLo + ((b.slot + b.round) % this.sportRange));
      b.inflight = { sentAt: now, deadline: now + b.cfg.timeout };
      due.push(b.slot);
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

  private complete(b: Backend, v: Verdict | null, now: number): void {
    const started = b.inflight!.sentAt;
    b.inflight = null;
    let r: CheckResult;
    if (!v) r = { ok: false, state: 'filtered', reason: 'no-response', rtt_ms: null, ts: now };
    else {
      const rtt = v.rttMs === null ? null : Math.round(v.rttMs * 1000) / 1000;
      if (v.state === C.HO_STATE_OPEN) r = { ok: true, state: 'open', reason: 'syn-ack', rtt_ms: rtt, ts: now };
      else if (v.state === C.HO_STATE_CLOSED) r = { ok: false, state: 'closed', reason: 'rst', rtt_ms: rtt, ts: now };
      else r = { ok: false, state: 'unreachable', reason: `icmp-${v.icmpType}-${v.icmpCode}`, rtt_ms: rtt, ts: now };
      if (rtt !== null) this.observe(rtt / 1000);
    }
    b.last = r;
    b.checks++;
    b.counts[r.state]++;
    b.history.push(r);
    if (b.history.length > HISTORY) b.history.shift();
    const t = b.health.record(r.ok);
    const interval = b.health.nextInterval(b.cfg);
    const jitter = interval * b.cfg.jitter * (Math.random() * 2 - 1);
    b.nextAt = Math.max(now, started + interval + jitter);
    this.emit('result', b, r);
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

  /** Swaps in a new engine (a larger table after a reload); backends keep their state. */
  replaceEngine(engine: Engine): void {
    this.engine = engine;
    this.free.length = 0;
    this.bySlot.length = 0;
    for (let i = engine.capacity - 1; i >= 0; i--) this.free.push(i);
    for (const b of this.backends.values()) { b.slot = -1; b.inflight = null; }
    for (const b of this.backends.values()) { b.slot = this.free.pop()!; this.bySlot[b.slot] = b; }
  }
}
