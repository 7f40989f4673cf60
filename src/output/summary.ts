// End-of-sweep accounting, shared by every output format and the stderr line.

import { PROBE_STATES } from '../contract.generated';
import type { ProbeResult, ProbeState } from '../types';

/** The four final states (enum ho_probe_state), in the order counts are printed. */
export { PROBE_STATES };

export interface SweepSummary {
  /** Final verdicts per state; they sum to `probes`. */
  counts: Record<ProbeState, number>;
  probes: number;
  /** SYNs put on the wire, retries included. */
  sent: number;
  retries: number;
  /** Replies for a probe that already had a verdict. */
  duplicates: number;
  /** Replies that matched no probe (bad cookie, wrong port, …). */
  invalid: number;
  elapsedSeconds: number;
  probesPerSecond: number;
  /** ISO-8601. */
  startTime: string;
  endTime: string;
}

export interface SweepCounters { sent: number; retries: number; duplicates: number; invalid: number }

/** Tallies verdicts as they stream past, then freezes them into a SweepSummary. */
export class SummaryCounter {
  readonly counts: Record<ProbeState, number> = { open: 0, closed: 0, filtered: 0, unreachable: 0 };
  readonly start: Date;

  constructor(start: Date = new Date()) {
    this.start = start;
  }

  add(r: Pick<ProbeResult, 'state'>): void {
    this.counts[r.state]++;
  }

  finish(counters: SweepCounters, end: Date = new Date()): SweepSummary {
    const probes = PROBE_STATES.reduce((n, s) => n + this.counts[s], 0);
    const elapsedSeconds = Math.max(0, (end.getTime() - this.start.getTime()) / 1000);
    return {
      counts: { ...this.counts },
      probes,
      sent: counters.sent,
      retries: counters.retries,
      duplicates: counters.duplicates,
      invalid: counters.invalid,
      elapsedSeconds,
      // A sweep that finished within the clock's resolution has no meaningful rate.
      probesPerSecond: elapsedSeconds > 0 ? probes / elapsedSeconds : 0,
      startTime: this.start.toISOString(),
      endTime: end.toISOString(),
    };
  }
}

/** One human line for stderr; the wording is stable so scripts may grep it. */
export function formatSummaryLine(s: SweepSummary): string {
  const c = s.counts;
  return (
    `halfopen: ${s.probes} probes in ${s.elapsedSeconds.toFixed(2)} s (${Math.round(s.probesPerSecond)}/s): ` +
    `${c.open} open, ${c.closed} closed, ${c.filtered} filtered, ${c.unreachable} unreachable; ` +
    `${s.retries} retried, ${s.duplicates} duplicates, ${s.invalid} invalid`
  );
}
