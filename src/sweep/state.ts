// The one state of a sweep job: what the run is (command, seed, shard,
// fingerprint, output), how far it has got (counters over every run of the
// sweep) and what it ran on. The checkpoint and the run record are two views
// of this object, so they cannot disagree on what they both say.
import type { OutputFormat } from '../output/create-writer';
import type { StateCounts, Watermark } from '../output/ordered-rows';
import type { Checkpoint } from './checkpoint';
import type { RunRecord, TimeoutRecord } from './run-record';

/** Packet counters, summed over a sweep's runs (a resumed sweep starts from its checkpoint's). */
export interface SweepCounters { sent: number; retried: number; duplicates: number; invalid: number }

export interface SweepIdentity {
  halfopen: string;
  /** argv after the program name: what --resume replays and merge rebuilds the space from. */
  command: string[];
  cwd: string;
  seed: bigint;
  /** 0-based, as Kubernetes numbers pods; null when not sharded. */
  shard: { index: number; count: number } | null;
  fingerprint: string;
  /** Probes in this shard. */
  probes: number;
  output: { path: string | null; format: OutputFormat };
  start: Date;
  /** Addresses of the whole sweep after excludes, and the probes the default exclusions left out. */
  addresses: bigint;
  excludedByDefault: bigint;
  defaultExcludes: boolean;
}

export class SweepState {
  /** Counters of the runs before this one (from the checkpoint), and this run's so far. */
  readonly before: SweepCounters;
  private current: SweepCounters = { sent: 0, retried: 0, duplicates: 0, invalid: 0 };
  /** The engine the run went through; 'none' until it is open. */
  xdpMode = 'none';
  sendPath = 'none';
  /** The wait after each pass, as planned and then as chosen by the run. */
  timeout: TimeoutRecord | null = null;
  /** Source addresses, when given (--source-ip). */
  sources: string[] = [];

  constructor(readonly id: SweepIdentity, resumed?: Checkpoint) {
    this.before = { sent: resumed?.sent ?? 0, retried: resumed?.retried ?? 0, duplicates: resumed?.duplicates ?? 0, invalid: resumed?.invalid ?? 0 };
  }

  /** This run's counters (live while it runs, final after it). */
  setRun(c: Partial<SweepCounters>): void { this.current = { ...this.current, ...c }; }

  get totals(): SweepCounters {
    const b = this.before, c = this.current;
    return { sent: b.sent + c.sent, retried: b.retried + c.retried, duplicates: b.duplicates + c.duplicates, invalid: b.invalid + c.invalid };
  }

  /** The checkpoint at `mark` (only sweeps with -o have one, so the path is set). */
  checkpoint(mark: Watermark, complete: boolean, saved = new Date()): Checkpoint {
    const { id } = this, t = this.totals;
    return {
      version: 1, halfopen: id.halfopen, cwd: id.cwd, command: id.command, seed: id.seed.toString(),
      shard: id.shard, fingerprint: id.fingerprint, probes: id.probes,
      output: { path: id.output.path!, format: id.output.format }, position: mark.position, bytes: mark.bytes, counts: mark.counts,
      sent: t.sent, retried: t.retried, duplicates: t.duplicates, invalid: t.invalid,
      start: id.start.toISOString(), saved: saved.toISOString(), complete,
    };
  }

  /** The run record, with the verdicts known (`counts`) and the output's length. */
  record(counts: StateCounts, bytes: number, complete: boolean, end = new Date()): RunRecord {
    const { id } = this, t = this.totals;
    return {
      version: 1, halfopen: id.halfopen, command: id.command, seed: id.seed.toString(),
      shard: id.shard, fingerprint: id.fingerprint,
      output: { path: id.output.path, format: id.output.format, bytes },
      start: id.start.toISOString(), end: end.toISOString(), probes: id.probes,
      sent: t.sent, retried: t.retried, counts, invalid: t.invalid, duplicates: t.duplicates,
      xdp_mode: this.xdpMode, send_path: this.sendPath, complete,
      addresses: Number(id.addresses), excluded_by_default: Number(id.excludedByDefault), default_excludes: id.defaultExcludes,
      ...(this.timeout ? { timeout: this.timeout } : {}),
      ...(this.sources.length ? { sources: this.sources } : {}),
    };
  }
}
