// The run record (`sweep --metadata-file FILE`): one JSON document per sweep,
// written at the end and on interrupt, that says what the run was (command,
// seed, shard, the target space's fingerprint), where its results went and
// whether they are complete. `halfopen merge` reads these and trusts nothing
// else, so the field names below are a contract: add fields, never rename.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { HalfopenError } from '../errors';
import type { ProbeState } from '../types';
import type { OutputFormat } from '../output/create-writer';
import { PROBE_STATES } from '../contract.generated';

export const RUN_RECORD_VERSION = 1;

export interface RunRecord {
  version: 1;
  /** halfopen's package version. */
  halfopen: string;
  /** argv after the node binary and script: what to run again. */
  command: string[];
  /** Seed of the probe order, as a decimal string (it is a 64-bit value). */
  seed: string;
  /** 0-based shard index and count, null when the run was not sharded. */
  shard: { index: number; count: number } | null;
  /** Hex SHA-256 of the target space (ranges, pairs, ports, excludes); the same for every seed and shard. */
  fingerprint: string;
  output: { path: string | null; format: OutputFormat; bytes: number };
  /** ISO-8601. */
  start: string;
  end: string;
  /** Probes in this shard. */
  probes: number;
  sent: number;
  retried: number;
  /** Verdicts per state; in a record with `complete: false`, those known when the run stopped. */
  counts: Record<ProbeState, number>;
  invalid: number;
  duplicates: number;
  xdp_mode: string;
  send_path: string;
  /** Every probe of the shard has its row in `output`. */
  complete: boolean;
  /** Addresses of the whole sweep (every shard) after every exclude: what the size guard counted. */
  addresses?: number;
  /** Probes of the whole sweep the default exclusions left out (0 with `default_excludes: false`). */
  excluded_by_default?: number;
  /** Whether the default exclusions applied (false with --no-default-excludes). */
  default_excludes?: boolean;
  /** The wait after each pass's last SYN: fixed, or chosen from the RTTs measured (--timeout auto). */
  timeout?: TimeoutRecord;
  /** Source addresses the probes left from, in the order probe indices map to them. */
  sources?: string[];
}

export interface TimeoutRecord {
  mode: 'fixed' | 'auto';
  /** The wait after the last pass, ms (the last one chosen, in auto mode). */
  ms: number;
  /** auto: the estimator's inputs and bounds. */
  floor_ms?: number;
  ceiling_ms?: number;
  quantile?: number;
  factor?: number;
  /** auto: RTT samples seen, and the quantile of them. */
  samples?: number;
  rtt_quantile_ms?: number | null;
}

/** What a fingerprint covers: the target space only, in its canonical (parsed) form. */
export interface SpaceDescription {
  ranges: ReadonlyArray<{ lo: bigint; hi: bigint }>;
  pairs: ReadonlyArray<{ addr: bigint; port: number }>;
  ports: readonly number[];
  excludes: ReadonlyArray<{ lo: bigint; hi: bigint }>;
}

/**
 * Hex SHA-256 of the target space. Built from parsed values (not the command
 * line), so `-p 80,81` and `-p 81,80` or a reordered targets file agree only
 * when the probe space really is the same; seed and shard are left out so the
 * shards of one sweep share it.
 */
export function spaceFingerprint(s: SpaceDescription): string {
  const h = crypto.createHash('sha256');
  const line = (k: string, v: string) => h.update(`${k} ${v}\n`);
  line('fingerprint', '1');
  for (const r of s.ranges) line('range', `${r.lo.toString(16)}-${r.hi.toString(16)}`);
  for (const p of s.pairs) line('pair', `${p.addr.toString(16)}:${p.port}`);
  line('ports', s.ports.join(','));
  for (const e of s.excludes) line('exclude', `${e.lo.toString(16)}-${e.hi.toString(16)}`);
  return h.digest('hex');
}

const FORMATS: readonly string[] = ['text', 'ndjson', 'csv', 'grepable', 'xml'];

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Checks a parsed document field by field; throws E_USAGE naming the first bad field. */
export function validateRunRecord(doc: unknown, where = 'run record'): RunRecord {
  const bad = (field: string, want: string): never => {
    throw new HalfopenError('E_USAGE', `${where}: field "${field}" ${want}`);
  };
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) bad('(document)', 'must be a JSON object');
  const d = doc as Record<string, unknown>;
  if (d.version !== RUN_RECORD_VERSION) bad('version', `must be ${RUN_RECORD_VERSION}`);
  if (typeof d.halfopen !== 'string') bad('halfopen', 'must be a string');
  if (!Array.isArray(d.command) || !d.command.every((a) => typeof a === 'string')) bad('command', 'must be an array of strings');
  if (typeof d.seed !== 'string' || !/^\d+$/.test(d.seed)) bad('seed', 'must be a decimal string');
  if (d.shard !== null) {
    const s = d.shard as Record<string, unknown> | undefined;
    if (!s || typeof s !== 'object' || !isCount(s.index) || !isCount(s.count) || s.count < 1 || s.index >= s.count)
      bad('shard', 'must be null or {"index": I, "count": N} with 0 <= I < N');
  }
  if (typeof d.fingerprint !== 'string' || !/^[0-9a-f]{64}$/.test(d.fingerprint)) bad('fingerprint', 'must be 64 hex digits');
  const o = d.output as Record<string, unknown> | undefined;
  if (!o || typeof o !== 'object') bad('output', 'must be an object');
  if (o!.path !== null && typeof o!.path !== 'string') bad('output.path', 'must be a string or null');
  if (typeof o!.format !== 'string' || !FORMATS.includes(o!.format)) bad('output.format', `must be one of ${FORMATS.join(', ')}`);
  if (!isCount(o!.bytes)) bad('output.bytes', 'must be a non-negative integer');
  for (const k of ['start', 'end'] as const)
    if (typeof d[k] !== 'string' || Number.isNaN(Date.parse(d[k] as string))) bad(k, 'must be an ISO-8601 time');
  for (const k of ['probes', 'sent', 'retried', 'invalid', 'duplicates'] as const) if (!isCount(d[k])) bad(k, 'must be a non-negative integer');
  const c = d.counts as Record<string, unknown> | undefined;
  if (!c || typeof c !== 'object') bad('counts', 'must be an object');
  for (const s of PROBE_STATES) if (!isCount(c![s])) bad(`counts.${s}`, 'must be a non-negative integer');
  for (const k of ['xdp_mode', 'send_path'] as const) if (typeof d[k] !== 'string') bad(k, 'must be a string');
  if (typeof d.complete !== 'boolean') bad('complete', 'must be true or false');
  return d as unknown as RunRecord;
}

export function encodeRunRecord(r: RunRecord): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}

export function readRunRecord(file: string): RunRecord {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new HalfopenError('E_USAGE', `cannot read run record ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new HalfopenError('E_USAGE', `${file}: not JSON`);
  }
  return validateRunRecord(doc, file);
}

/**
 * Writes `data` to `file` so a reader sees the old or the new content, never
 * a mix: a temporary file beside it, fsync, rename, fsync of the directory.
 */
export function writeFileAtomic(file: string, data: string | Buffer): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  try {
    const dfd = fs.openSync(path.dirname(file), 'r');
    try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
  } catch { /* directories that cannot be opened or fsynced: the rename stands */ }
}

/** writeFileAtomic through the thread pool: the same steps, without blocking the caller's thread on fsync. */
export async function writeFileAtomicAsync(file: string, data: string | Buffer): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fh = await fs.promises.open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  try {
    const dir = await fs.promises.open(path.dirname(file), 'r');
    try { await dir.sync(); } finally { await dir.close(); }
  } catch { /* directories that cannot be opened or fsynced: the rename stands */ }
}

export function writeRunRecord(file: string, r: RunRecord): void {
  writeFileAtomic(file, encodeRunRecord(r));
}
