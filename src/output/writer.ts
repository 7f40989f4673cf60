// The streaming writer contract: every chunk is complete text, newline-terminated
// (or empty), so the caller can hand it straight to a stream as results arrive
// and nothing is buffered per result.

import type { ProbeResult } from '../types';
import type { SweepSummary } from './summary';

export interface ResultWriter {
  /** Written once before any row; '' for formats without one. */
  header(): string;
  /** One result. */
  row(r: ProbeResult): string;
  /** Written once after the last row; '' for formats without one. */
  footer(summary: SweepSummary): string;
}

export interface WriterOptions {
  /** halfopen version, recorded by grepable and xml. */
  version?: string;
  /** Command-line arguments after the program name, recorded by grepable and xml. */
  args?: readonly string[];
  /** Sweep start; defaults to the moment header() is called. */
  startTime?: Date;
}

/** The command line as one line of text. */
export function commandLine(opts: WriterOptions): string {
  return ['halfopen', ...(opts.args ?? [])].join(' ').replace(/[\r\n]+/g, ' ');
}

export const unixSeconds = (d: Date): number => Math.floor(d.getTime() / 1000);
