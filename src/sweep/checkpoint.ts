// The state file of a resumable sweep (`sweep -o FILE --checkpoint STATE`,
// `sweep --resume STATE`): a SweepRun's progress written down. `position` and
// `bytes` are an exact low-water mark (see ordered-rows.ts): every probe below
// `position` has its row in the first `bytes` bytes of the output and no other
// probe has. Saved with write + fsync + rename, so a reader finds the previous
// state or the new one, even after SIGKILL or a crash.
import fs from 'node:fs';
import path from 'node:path';
import { HalfopenError } from '../errors';
import type { StateCounts } from '../output/ordered-rows';
import type { OutputFormat } from '../output/create-writer';
import { writeFileAtomicAsync } from './run-record';
import { PROBE_STATES } from '../contract.generated';

export const CHECKPOINT_VERSION = 1;

export interface Checkpoint {
  version: 1;
  /** halfopen's version: a resume refuses another binary (the probe order may differ). */
  halfopen: string;
  /** Directory the sweep ran in: relative paths in `command` are relative to it. */
  cwd: string;
  /** argv after the program name, replayed by --resume. */
  command: string[];
  seed: string;
  shard: { index: number; count: number } | null;
  /** Fingerprint of the target space (run-record.ts spaceFingerprint). */
  fingerprint: string;
  /** Probes in this shard. */
  probes: number;
  output: { path: string; format: OutputFormat };
  position: number;
  bytes: number;
  /** Verdicts below `position`, per state. */
  counts: StateCounts;
  /** Totals over every run of this sweep so far (approximate between checkpoints). */
  sent: number;
  retried: number;
  duplicates: number;
  invalid: number;
  /** When the sweep first started (ISO-8601). */
  start: string;
  /** When this state was saved. */
  saved: string;
  /** Every probe has its row and the output has its footer. */
  complete: boolean;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export function encodeCheckpoint(c: Checkpoint): string {
  return `${JSON.stringify(c)}\n`;
}

/** Parses and checks a state file's text; throws E_USAGE naming `where` and the bad field. */
export function decodeCheckpoint(text: string, where: string): Checkpoint {
  let d: Record<string, unknown>;
  try {
    d = JSON.parse(text);
  } catch {
    throw new HalfopenError('E_USAGE', `${where} is not a halfopen checkpoint (not JSON)`);
  }
  const bad = (field: string): never => { throw new HalfopenError('E_USAGE', `${where} is not a valid halfopen checkpoint (field "${field}")`); };
  if (!d || typeof d !== 'object' || d.version !== CHECKPOINT_VERSION) bad('version');
  for (const k of ['halfopen', 'cwd', 'seed', 'fingerprint', 'start', 'saved'] as const) if (typeof d[k] !== 'string') bad(k);
  if (!Array.isArray(d.command) || !d.command.every((a) => typeof a === 'string')) bad('command');
  if (!/^\d+$/.test(d.seed as string)) bad('seed');
  const s = d.shard as { index?: unknown; count?: unknown } | null;
  if (s !== null && (typeof s !== 'object' || !isCount(s.index) || !isCount(s.count))) bad('shard');
  const o = d.output as { path?: unknown; format?: unknown } | undefined;
  if (!o || typeof o.path !== 'string' || typeof o.format !== 'string') bad('output');
  for (const k of ['probes', 'position', 'bytes', 'sent', 'retried', 'duplicates', 'invalid'] as const) if (!isCount(d[k])) bad(k);
  if ((d.position as number) > (d.probes as number)) bad('position');
  const c = d.counts as Record<string, unknown> | undefined;
  if (!c || !PROBE_STATES.every((k) => isCount(c[k]))) bad('counts');
  if (typeof d.complete !== 'boolean') bad('complete');
  return d as unknown as Checkpoint;
}

export function readCheckpoint(file: string): Checkpoint {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new HalfopenError('E_USAGE', `cannot read checkpoint ${file}: ${describeErrno(err)}`);
  }
  return decodeCheckpoint(text, file);
}

/**
 * Removes temporary files that a save killed between write and rename left
 * beside the state file (their names carry the dead process's PID).
 */
export function removeStaleSaves(file: string): void {
  const dir = path.dirname(file), base = path.basename(file);
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return; }
  const re = new RegExp(`^\\.${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d+)\\.tmp$`);
  for (const n of names) {
    const m = re.exec(n);
    if (m && Number(m[1]) !== process.pid) fs.rmSync(path.join(dir, n), { force: true });
  }
}

/** Saves atomically, with the fsyncs in the thread pool (the sweep's main thread collects verdicts meanwhile). */
export function saveCheckpoint(file: string, c: Checkpoint): Promise<void> {
  return writeFileAtomicAsync(file, encodeCheckpoint(c));
}

/** "ENOSPC (no space left on device)" from a Node errno error. */
export function describeErrno(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (!e?.code) return String((e as Error)?.message ?? err);
  const text = /^[A-Z0-9]+: ([^,]+)/.exec(e.message)?.[1];
  return text ? `${e.code} (${text})` : e.code;
}
