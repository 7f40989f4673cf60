// The one interface every push target (a balancer serve drives) implements,
// and the view of a backend it is given. The driver (driver.ts) hands each
// target one batch of changes per scheduler tick and the full list whenever
// the target asks to reconcile; a target owns its connection, its backoff and
// its counters, and never makes a check wait.
import type { AdminState } from '../backend';
import { RateLimitedLog, warningLog } from '../rate-limited-log';

/** What a balancer needs to know of one backend, as serve reports it now. */
export interface BackendView {
  name: string;
  /** Printed address, '' while unresolved. */
  address: string;
  port: number;
  /** The reported state (rise/fall applied; down when stale, unresolved or in maintenance). */
  state: 'up' | 'down';
  admin: AdminState;
  /** Weight to announce, percent of the configured one (slow start ramps it); null when serve does not manage the weight. */
  weight: number | null;
  /** The balancer's own name for it when the config gives one (HAProxy `server:`). */
  server?: string;
}

/** Counters every target keeps, rendered on /metrics with its name as a label. */
export interface PushCounters {
  /** Commands (HAProxy) or backend updates (nftlb) sent. */
  sent: number;
  /** Batches or reconciles that failed (connection refused, error reply, timeout). */
  failures: number;
  /** Reconciles completed. */
  reconciles: number;
  /** When the last reconcile completed, ms since the epoch (0: never). */
  lastReconcile: number;
  /** Servers found differing from serve's state at a reconcile, and corrected. */
  driftCorrected: number;
  /** Whether the last exchange with the balancer worked. */
  connected: boolean;
}

export const newCounters = (): PushCounters => ({ sent: 0, failures: 0, reconciles: 0, lastReconcile: 0, driftCorrected: 0, connected: false });

/** Backends discovered from a balancer (nftlb `discover: true`): checked as if they were in the config. */
export interface Discovered { name: string; host: string; port: number; weight?: number }

/** What a target may ask of the daemon. */
export interface PushHost {
  /** Every backend as it is now. */
  views(): BackendView[];
  /** One warning line (the target rate-limits its own). */
  warn(m: string): void;
  /** A target's discovered backends changed (the daemon re-applies its backend list). */
  discovered(target: PushTarget, list: Discovered[]): void;
}

export interface PushTarget {
  /** Stable label: "haproxy:/run/haproxy/admin.sock", "nftlb:http://127.0.0.1:27/app". */
  readonly name: string;
  readonly counters: PushCounters;
  /** Connects and reconciles; later failures are retried with backoff. */
  start(): void;
  /** The backends that changed in one tick (latest view of each). Never throws, never blocks. */
  update(changes: BackendView[]): void;
  /** Reads the balancer's state and corrects what differs; resolves when done (or failed). */
  reconcile(): Promise<void>;
  close(): Promise<void>;
  /** Backends this target discovered (empty unless discovery is on). */
  discoveredBackends(): Discovered[];
}

/** Retry delay after `failures` consecutive failures: 0.5 s doubling to 30 s. */
export const backoffMs = (failures: number): number => Math.min(30_000, 500 * 2 ** Math.min(6, Math.max(0, failures - 1)));

/**
 * The work loop every target runs: changes queue up by backend, one piece of
 * work at a time (a reconcile when one is wanted, else the queued changes),
 * and a failure means a reconcile after a backoff, with one rate-limited
 * warning. Subclasses say how to flush and how to reconcile; what they send
 * and to where is theirs.
 */
export abstract class QueuedTarget implements PushTarget {
  abstract readonly name: string;
  readonly counters: PushCounters = newCounters();
  protected readonly queue = new Map<string, BackendView>();
  protected needReconcile = true;
  protected closed = false;
  protected readonly log: RateLimitedLog;
  private busy = false;
  private failuresInRow = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private idle: Array<() => void> = [];
  /** Timers of the subclass, cleared by close(). */
  protected readonly timers: NodeJS.Timeout[] = [];

  constructor(protected readonly host: PushHost) {
    this.log = warningLog(host.warn);
  }

  abstract start(): void;
  /** Sends the queued changes (taken from `queue`). */
  protected abstract flush(): Promise<void>;
  /** Reads the balancer's state and corrects what differs. */
  protected abstract reconcileNow(): Promise<void>;
  discoveredBackends(): Discovered[] { return []; }

  /** An unref'd interval that close() clears. */
  protected every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  update(changes: BackendView[]): void {
    for (const v of changes) this.queue.set(v.name, v);
    this.kick();
  }

  reconcile(): Promise<void> {
    this.needReconcile = true;
    const done = new Promise<void>((r) => this.idle.push(r));
    this.kick();
    return done;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of [...this.timers, this.retryTimer]) if (t) clearTimeout(t);
    for (const r of this.idle.splice(0)) r();
  }

  /** Whether work is under way, waiting for a retry, or over (closed). */
  protected get occupied(): boolean { return this.busy || this.closed || this.retryTimer !== null; }

  /** Runs the next piece of work unless one is under way or a retry is pending. */
  protected kick(): void {
    if (this.occupied) return;
    if (!this.needReconcile && !this.queue.size) {
      for (const r of this.idle.splice(0)) r();
      return;
    }
    this.busy = true;
    const work = this.needReconcile ? this.reconcileNow() : this.flush();
    work.then(() => this.ok(), (err) => this.failed(err as Error)).finally(() => {
      this.busy = false;
      this.kick();
    });
  }

  private ok(): void {
    if (!this.counters.connected && this.failuresInRow) this.host.warn(`push ${this.name}: connected again`);
    this.counters.connected = true;
    this.failuresInRow = 0;
    this.log.reset();
  }

  private failed(err: Error): void {
    this.counters.failures++;
    this.counters.connected = false;
    this.failuresInRow++;
    this.needReconcile = true; // whatever was lost is corrected by the read-back after reconnecting
    const wait = backoffMs(this.failuresInRow);
    this.log.write(`push ${this.name}: ${err.message}; retrying in ${wait / 1000} s, checking goes on`);
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.kick(); }, wait);
    this.retryTimer.unref();
    for (const r of this.idle.splice(0)) r(); // a reconcile() waiting resolves: it failed, and is retried
  }
}
