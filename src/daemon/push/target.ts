// The one interface every push target (a balancer serve drives) implements,
// and the view of a backend it is given. The driver (driver.ts) hands each
// target one batch of changes per scheduler tick and the full list whenever
// the target asks to reconcile; a target owns its connection, its backoff and
// its counters, and never makes a check wait.
import type { AdminState } from '../backend';

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

/** A warning at most once per `everyMs`, with a count of those not shown. */
export class RateLimitedLog {
  private last = -Infinity;
  private skipped = 0;
  constructor(private readonly out: (m: string) => void, private readonly everyMs = 30_000) {}
  warn(m: string, now = Date.now()): void {
    if (now - this.last < this.everyMs) { this.skipped++; return; }
    this.out(this.skipped ? `${m} (${this.skipped} similar warnings not shown)` : m);
    this.skipped = 0;
    this.last = now;
  }
  /** The next warning is shown at once (after a recovery). */
  reset(): void { this.last = -Infinity; this.skipped = 0; }
}

/** Retry delay after `failures` consecutive failures: 0.5 s doubling to 30 s. */
export const backoffMs = (failures: number): number => Math.min(30_000, 500 * 2 ** Math.min(6, Math.max(0, failures - 1)));
