// `halfopen merge META.json…`: the shards of one sweep (run records written by
// `sweep --shards N --metadata-file …`) into one result set, in any format.
//
// Nothing is written until the shards are proven to be one complete sweep:
//   1. the records agree (seed, shard count, fingerprint), each shard index
//      0..N-1 is there exactly once, and each run says `complete`;
//   2. the target space rebuilt from the recorded command has that
//      fingerprint, and the shards' probes add up to its size;
//   3. streaming every shard's ndjson once, each row is a probe of the space
//      whose index has not been seen (a bitset over the space: one bit per
//      probe, 2 MB for 16 shards of 1M probes), and each shard has exactly its
//      recorded number of rows and bytes.
// Only then are the rows streamed a second time into the output. Memory stays
// flat whatever the number of rows: one line at a time plus the bitset.
//
// Shard outputs are read as ndjson, the interchange format: it carries every
// field of a result and one result per line, which the other formats do not
// both do. Run shards with `--format ndjson -o FILE`.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { Command } from 'commander';
import { HalfopenError, usageError } from '../errors';
import { createWriter, parseFormat, OutputFormat } from '../output/create-writer';
import { readRunRecord, RunRecord } from '../sweep/run-record';
import { SummaryCounter, formatSummaryLine, PROBE_STATES } from '../output/summary';
import { mustParseAddress } from '../targets/address';
import { ProbeSpace } from '../targets/probe-space';
import type { ProbeResult, ProbeState } from '../types';
import { buildSpace, specOfCommand, SpaceSpec } from '../sweep/space';

export interface MergeOptions { format: OutputFormat; output?: string; open?: boolean }

export function registerMerge(program: Command, version: string): void {
  program
    .command('merge')
    .description('merge the shards of one sweep from their run records (--metadata-file), after proving them complete')
    .argument('<records...>', 'run record of every shard (sweep --shards N --metadata-file FILE)')
    .option('--format <fmt>', 'text, ndjson, csv, grepable or xml', parseFormat, 'text' as OutputFormat)
    .option('-o, --output <file>', 'write the merged results to FILE instead of stdout')
    .option('--open', 'report only open ports')
    .action(async (records: string[], opts: MergeOptions) => {
      await merge(records, opts, version, process.argv.slice(2));
    });
}

const mergeError = (m: string) => new HalfopenError('E_MERGE', m);

interface Shard { file: string; record: RunRecord; output: string }

/** 0-based index and count; an unsharded run is shard 0 of 1. */
const shardOf = (r: RunRecord) => r.shard ?? { index: 0, count: 1 };

/** The records, checked against each other; returns them in shard order. */
export function checkRecords(files: string[]): Shard[] {
  if (!files.length) throw usageError('merge: give the run record of every shard');
  const shards: Shard[] = [];
  for (const file of files) {
    let record: RunRecord;
    try {
      record = readRunRecord(file);
    } catch (err) {
      throw mergeError((err as Error).message);
    }
    const { index, count } = shardOf(record);
    const first = shards[0];
    const name = `${file}: shard ${index} of ${count}`;
    if (first) {
      const f = first.record;
      if (record.fingerprint !== f.fingerprint) throw mergeError(`${name} is from another sweep: its targets differ (fingerprint ${record.fingerprint.slice(0, 12)}…, ${first.file} has ${f.fingerprint.slice(0, 12)}…)`);
      if (record.seed !== f.seed) throw mergeError(`${name} is from another sweep: seed ${record.seed}, ${first.file} has seed ${f.seed}`);
      if (count !== shardOf(f).count) throw mergeError(`${name} is from another sweep: ${count} shards, ${first.file} has ${shardOf(f).count}`);
    }
    const twin = shards.find((s) => shardOf(s.record).index === index);
    if (twin) throw mergeError(`${name} given twice (also ${twin.file})`);
    if (!record.complete) throw mergeError(`${name} is incomplete (complete: false): resume it (sweep --resume) or rerun it`);
    if (record.output.path === null) throw mergeError(`${name} wrote its results to stdout: merge needs each shard's -o FILE`);
    if (record.output.format !== 'ndjson') throw mergeError(`${name} is ${record.output.format}: merge reads ndjson shards (sweep --format ndjson)`);
    if (record.command.includes('--open')) throw mergeError(`${name} ran with --open: merge needs every verdict, not only the open ones`);
    shards.push({ file, record, output: locateOutput(file, record.output.path) });
  }
  const count = shardOf(shards[0].record).count;
  const have = new Set(shards.map((s) => shardOf(s.record).index));
  const missing: number[] = [];
  for (let i = 0; i < count && missing.length < 10; i++) if (!have.has(i)) missing.push(i);
  if (missing.length) {
    throw mergeError(`shard${missing.length > 1 ? 's' : ''} ${missing.join(', ')}${missing.length === 10 ? ', …' : ''} of ${count} missing: give the run record of every shard 0 to ${count - 1}`);
  }
  return shards.sort((a, b) => shardOf(a.record).index - shardOf(b.record).index);
}

/**
 * The shard's output file: the recorded path, or a file of that name beside
 * the run record when the files were moved together (a volume mounted
 * elsewhere, a copied directory).
 */
function locateOutput(recordFile: string, recorded: string): string {
  if (fs.existsSync(recorded)) return recorded;
  const beside = path.join(path.dirname(recordFile), path.basename(recorded));
  if (fs.existsSync(beside)) return beside;
  throw mergeError(`${recordFile}: its results ${recorded} are missing (also not beside the run record)`);
}

/** The target space a recorded `sweep` command line describes, with its fingerprint (the sweep layer rebuilds it). */
export async function spaceOfCommand(command: string[]): Promise<{ space: ProbeSpace; fingerprint: string }> {
  let spec: SpaceSpec;
  try {
    spec = specOfCommand(command);
  } catch (err) {
    throw mergeError(`the recorded command "${command.join(' ')}" does not parse as a sweep: ${(err as Error).message}`);
  }
  try {
    const { space, fingerprint } = await buildSpace(spec);
    return { space, fingerprint };
  } catch (err) {
    throw mergeError(`cannot rebuild the sweep's targets from its command (${(err as Error).message}): run merge where its target and exclude files are`);
  }
}

/** Calls `onRow` for each line of an ndjson file, one line in memory at a time. */
async function eachLine(file: string, onRow: (line: string, lineNo: number) => void | Promise<void>): Promise<void> {
  const rl = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 }), crlfDelay: Infinity });
  let n = 0;
  for await (const line of rl) {
    const p = onRow(line, ++n);
    if (p) await p; // only when the output pushes back
  }
}

const STATE_SET = new Set<string>(PROBE_STATES);

function parseRow(line: string, where: () => string): ProbeResult {
  let r: ProbeResult;
  try {
    r = JSON.parse(line) as ProbeResult;
  } catch {
    throw mergeError(`${where()}: not a JSON line`);
  }
  if (!r || typeof r.ip !== 'string' || !Number.isInteger(r.port) || !STATE_SET.has(r.state as string)) {
    throw mergeError(`${where()}: not a halfopen result (ip, port, state)`);
  }
  return r;
}

/**
 * Pass 1 of a merge: every row of every shard is a probe of the space seen
 * once (one bit per probe), and each shard has the rows and bytes its record
 * says; the rows are counted into `counter`.
 */
async function proveShards(shards: Shard[], space: ProbeSpace, counter: SummaryCounter): Promise<void> {
  const seen = new Uint8Array(Math.ceil(space.size / 8));
  for (const s of shards) {
    const bytes = fs.statSync(s.output).size;
    if (bytes !== s.record.output.bytes) throw mergeError(`${s.output}: ${bytes} bytes, its run record ${s.file} says ${s.record.output.bytes}: the file changed after the run`);
    let rows = 0;
    await eachLine(s.output, (line, n) => {
      if (!line) return;
      const where = () => `${s.output}:${n}`;
      const r = parseRow(line, where);
      let addr: bigint;
      try { addr = mustParseAddress(r.ip); } catch { throw mergeError(`${where()}: invalid address "${r.ip}"`); }
      const i = space.indexOf(addr, r.port);
      if (i < 0) throw mergeError(`${where()}: ${r.ip} port ${r.port} is not a probe of this sweep`);
      const bit = 1 << (i & 7);
      if (seen[i >>> 3] & bit) throw mergeError(`${where()}: ${r.ip} port ${r.port} has a verdict twice (in shard ${shardOf(s.record).index} or an earlier one)`);
      seen[i >>> 3] |= bit;
      counter.add(r);
      rows++;
    });
    if (rows !== s.record.probes) throw mergeError(`${s.output}: ${rows} results, its run record ${s.file} says ${s.record.probes} probes`);
    if (bytes > 0) {
      const last = Buffer.alloc(1);
      const fd = fs.openSync(s.output, 'r');
      try { fs.readSync(fd, last, 0, 1, bytes - 1); } finally { fs.closeSync(fd); }
      if (last[0] !== 0x0a) throw mergeError(`${s.output}: the last row is cut short (no newline at the end)`);
    }
  }
}

async function merge(files: string[], opts: MergeOptions, version: string, argv: string[]): Promise<void> {
  const started = Date.now();
  const shards = checkRecords(files);
  const first = shards[0].record;
  const N = shardOf(first).count;
  if (opts.output) {
    const dir = path.dirname(path.resolve(opts.output));
    try { fs.accessSync(dir, fs.constants.W_OK); } catch { throw usageError(`cannot write -o ${opts.output}: ${dir} is not a writable directory`); }
  }

  const { space, fingerprint } = await spaceOfCommand(first.command);
  if (fingerprint !== first.fingerprint) {
    throw mergeError(`${shards[0].file}: the targets its command names now (fingerprint ${fingerprint.slice(0, 12)}…) are not the ones swept (${first.fingerprint.slice(0, 12)}…): a target or exclude file changed`);
  }
  const total = shards.reduce((n, s) => n + s.record.probes, 0);
  if (total !== space.size) throw mergeError(`the ${N} shards hold ${total} probes, the sweep's space has ${space.size}`);

  // Pass 1: prove (and count).
  const counter = new SummaryCounter(new Date(minTime(shards, 'start')));
  await proveShards(shards, space, counter);
  // Every row was a distinct probe, and the rows add up to the space: nothing is missing.

  // Pass 2: write. ndjson rows are copied as they are; other formats are re-rendered.
  const out: NodeJS.WritableStream = opts.output ? fs.createWriteStream(opts.output) : process.stdout;
  let readerGone = false;
  const outError = new Promise<never>((_, reject) => out.on('error', (e: NodeJS.ErrnoException) => {
    // A reader that went away (| head) ends the merge as it ends any filter.
    if (e.code === 'EPIPE' && out === process.stdout) readerGone = true;
    reject(readerGone ? EPIPE : new HalfopenError('E_INTERNAL', `cannot write ${opts.output ?? 'stdout'}: ${e.code ?? e.message}`));
  }));
  outError.catch(() => {});
  try {
    await writeAll();
  } catch (err) {
    if (err !== EPIPE) throw err;
    process.exitCode = 141; // as a shell reports a filter killed by SIGPIPE
  }

  async function writeAll(): Promise<void> {
    const write = async (text: string | Buffer) => {
      if (text.length && !out.write(text)) await Promise.race([new Promise<void>((r) => out.once('drain', () => r())), outError]);
    };
    const writer = createWriter(opts.format, { version, args: argv, startTime: new Date(minTime(shards, 'start')) });
    const copy = opts.format === 'ndjson';
    await write(writer.header());
    let buf = '';
    for (const s of shards) {
      if (copy && !opts.open) {
        // Proven whole ndjson: the shard's bytes are the merged rows as they are.
        for await (const chunk of fs.createReadStream(s.output, { highWaterMark: 1 << 20 })) await write(chunk as Buffer);
        continue;
      }
      await eachLine(s.output, (line) => {
        if (!line) return;
        const r = JSON.parse(line) as ProbeResult;
        if (opts.open && r.state !== 'open') return;
        buf += copy ? `${line}\n` : writer.row(r);
        if (buf.length > 1 << 16) { const chunk = buf; buf = ''; return write(chunk); }
      });
    }
    const sum = (k: 'sent' | 'retried' | 'duplicates' | 'invalid') => shards.reduce((n, s) => n + s.record[k], 0);
    const summary = counter.finish({ sent: sum('sent'), retries: sum('retried'), duplicates: sum('duplicates'), invalid: sum('invalid') }, new Date(maxTime(shards, 'end')));
    buf += writer.footer(summary);
    await write(buf);
    if (out !== process.stdout) {
      await Promise.race([new Promise<void>((r) => (out as fs.WriteStream).end(r)), outError]);
    }
    const wrong = PROBE_STATES.filter((st: ProbeState) => summary.counts[st] !== shards.reduce((n, s) => n + s.record.counts[st], 0));
    if (wrong.length) process.stderr.write(`halfopen: warning: the shards' results disagree with their run records' counts of ${wrong.join(', ')}\n`);
    process.stderr.write(`${formatSummaryLine(summary)}; merged ${N} shards of seed ${first.seed} in ${((Date.now() - started) / 1000).toFixed(2)} s: 0 missing, 0 duplicated\n`);
  }
}

/** Thrown through the writing when stdout's reader has gone. */
const EPIPE = Symbol('EPIPE');

const minTime = (shards: Shard[], k: 'start' | 'end') => Math.min(...shards.map((s) => Date.parse(s.record[k])));
const maxTime = (shards: Shard[], k: 'start' | 'end') => Math.max(...shards.map((s) => Date.parse(s.record[k])));
