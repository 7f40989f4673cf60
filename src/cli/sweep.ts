// `halfopen sweep`: one-shot half-open scan of targets × ports. Results stream
// to stdout (or -o) as verdicts arrive; progress and the summary go to stderr.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { HalfopenError, usageError } from '../errors';
import { Engine, EngineOptions, ProbeSource, RunStats, checkSourceAddresses, unseenRepliesWarning } from '../engine/engine';
import { parsePorts } from '../targets/ports';
import { parseTargetSpec, readTargetFile, resolveHosts, parseExcludeList, readExcludeFile, ProbeSpace, AddrRange } from '../targets/target-set';
import { formatAddress, mustParseAddress, isV4 } from '../targets/address';
import { Permutation, chooseShard, shardSlice, Shard } from '../targets/permutation';
import { createWriter, parseFormat, OutputFormat } from '../output/create-writer';
import { SummaryCounter, formatSummaryLine, PROBE_STATES } from '../output/summary';
import { OrderedRows, StateCounts } from '../output/ordered-rows';
import { FileSink, OutputSink, StreamSink } from '../output/sink';
import { Checkpoint, describeErrno, readCheckpoint, removeStaleSaves, saveCheckpoint } from '../sweep/checkpoint';
import { spaceFingerprint, writeRunRecord } from '../sweep/run-record';
import { intOption, portRangeOption, choiceOption } from './options';
import { requirePrivileges } from '../privileges';

export interface SweepOptions {
  ports?: string;
  inputList?: string;
  rate: number;
  retries: number;
  timeout: number;
  exclude?: string[];
  excludeFile?: string[];
  interface?: string;
  sourceIp?: string[];
  sourcePorts: { lo: number; hi: number };
  seed?: string;
  shard?: string;
  shards?: number;
  shardIndex?: number;
  format: OutputFormat;
  output?: string;
  open?: boolean;
  senders: number;
  progress?: boolean;
  sendPath: 'auto' | 'raw' | 'packet';
  xdpMode: 'auto' | 'native' | 'generic';
  hook: 'auto' | 'xdp' | 'tc';
  rst: 'auto' | 'xdp' | 'kernel';
  dryRun?: boolean;
  checkpoint?: string;
  resume?: string;
  metadataFile?: string;
  statusUpdates?: string;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Flags a `--resume` command line may carry besides the state file. */
const RESUME_FLAGS = new Set(['resume', 'progress']);

export type SweepAction = (targets: string[], opts: SweepOptions) => Promise<void>;

/**
 * Adds `sweep` to `program`. `resume` replays a checkpointed sweep; `action`
 * replaces running the sweep: `halfopen merge` parses a shard's recorded
 * command line with the same definition.
 */
export function registerSweep(program: Command, version: string, resume?: ResumeFrom, action?: SweepAction): void {
  program
    .command('sweep')
    .description('half-open scan of TARGET… × PORTS; results on stdout, summary on stderr')
    .argument('[targets...]', 'address, CIDR, range a-b, host:port, [v6]:port or hostname')
    .option('-p, --ports <ports>', 'ports to probe, e.g. 80,443,8000-8100')
    .option('--input-list <file>', 'read targets from FILE, one per line, # comments (also -iL FILE)')
    .option('--rate <pps>', 'SYNs per second over all senders, 0 = as fast as possible', intOption('--rate', 0, 100_000_000), 10_000)
    .option('--retries <n>', 'resend SYNs that got no reply this many times', intOption('--retries', 0, 10), 1)
    .option('--timeout <ms>', 'wait for replies after the last SYN of each pass', intOption('--timeout', 1, 600_000), 1000)
    .option('--exclude <spec>', 'exclude addresses: address, CIDR or range, comma-separated (repeatable)', collect)
    .option('--exclude-file <file>', 'exclude the addresses listed in FILE (repeatable)', collect)
    .option('--interface <if>', 'send and listen on this interface (default: from the route)')
    .option('--source-ip <ip>', 'source address (once per family; default: from the route)', collect)
    .option('--source-ports <lo-hi>', 'source-port range of the probes (kept free of local sockets)', portRangeOption('--source-ports'), { lo: 61000, hi: 61999 })
    .option('--seed <n>', 'seed of the probe order (default: random)')
    .option('--shard <i/n>', 'probe only shard I of N (1-based) of the same order (needs the same --seed everywhere)')
    .option('--shards <n>', 'split the order into N shards (needs the same --seed everywhere); this run probes --shard-index', intOption('--shards', 1, 1_000_000))
    .option('--shard-index <i>', 'the 0-based shard of --shards N to probe (default: $JOB_COMPLETION_INDEX, as a Kubernetes Indexed Job sets it)', intOption('--shard-index', 0, 999_999))
    .option('--format <fmt>', 'text, ndjson, csv, grepable or xml', parseFormat, 'text' as OutputFormat)
    .option('-o, --output <file>', 'write results to FILE instead of stdout')
    .option('--open', 'report only open ports')
    // Described, not printed: --help and the man page must not depend on the machine.
    .addOption(new Option('--senders <n>', 'sender threads').argParser(intOption('--senders', 1, 64)).default(Math.max(1, os.availableParallelism()), 'one per CPU'))
    .option('--progress', 'show progress on stderr (default when stderr is a terminal)')
    .option('--no-progress', 'never show progress')
    .option('--send-path <path>', 'auto, raw (IPPROTO_RAW socket) or packet (AF_PACKET)', choiceOption('--send-path', ['auto', 'raw', 'packet'] as const), 'auto' as const)
    .option('--dry-run', 'print the probes in send order ("ADDRESS PORT" per line) and send nothing')
    .option('--xdp-mode <mode>', 'auto (generic on veth, else native with generic as fallback), native or generic', choiceOption('--xdp-mode', ['auto', 'native', 'generic'] as const), 'auto' as const)
    .option('--hook <hook>', 'where replies are matched: auto (XDP when the interface\'s XDP hook is free, else tc ingress), xdp or tc', choiceOption('--hook', ['auto', 'xdp', 'tc'] as const), 'auto' as const)
    .option('--rst <who>', 'who answers a SYN+ACK with the RST: auto (XDP in generic mode with AF_PACKET sends, else the kernel), xdp or kernel', choiceOption('--rst', ['auto', 'xdp', 'kernel'] as const), 'auto' as const)
    .option('--checkpoint <file>', 'save the progress to FILE every 2 s and on SIGINT/SIGTERM (needs -o); continue with --resume FILE')
    .option('--resume <file>', 'continue the sweep whose --checkpoint is FILE (no other arguments)')
    .option('--metadata-file <file>', 'write a JSON run record to FILE (seed, shard, fingerprint, counts, complete)')
    .option('--status-updates <file>', 'append one JSON line of progress per second to FILE')
    .action(async (targets: string[], opts: SweepOptions, cmd: Command) => {
      if (action) return action(targets, opts);
      if (resume) return sweep(targets, opts, version, resume.state.command, resume);
      if (opts.resume === undefined) return sweep(targets, opts, version, process.argv.slice(2));
      const extra = cmd.options.map((o) => o.attributeName()).filter((k) => !RESUME_FLAGS.has(k) && cmd.getOptionValueSource(k) === 'cli');
      if (targets.length || extra.length) throw usageError('--resume takes only the checkpoint file: the sweep continues with the arguments it was started with');
      const state = readCheckpoint(opts.resume);
      if (state.halfopen !== version) throw usageError(`${opts.resume} was written by halfopen ${state.halfopen}, this is ${version}: the probe order may differ; start a new sweep`);
      const file = path.resolve(opts.resume);
      removeStaleSaves(file);
      try { process.chdir(state.cwd); } catch (err) { throw usageError(`cannot resume in ${state.cwd}: ${describeErrno(err)}`); }
      // The saved command, with the seed it drew if it had none, and progress as asked now.
      const replay = new Command('halfopen').exitOverride().configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `halfopen: ${s}` : s) });
      registerSweep(replay, version, { state, file });
      const progress = cmd.getOptionValueSource('progress') === 'cli' ? [opts.progress ? '--progress' : '--no-progress'] : [];
      await replay.parseAsync([...state.command.map((a) => (a === '-iL' ? '--input-list' : a)), '--seed', state.seed, ...progress], { from: 'user' });
    });
}

/** Builds the probe space of a sweep from its command-line targets. */
export async function buildSpace(targets: string[], opts: Pick<SweepOptions, 'ports' | 'inputList' | 'exclude' | 'excludeFile'>): Promise<ProbeSpace> {
  return (await buildSpaceAndExcludes(targets, opts)).space;
}

export async function buildSpaceAndExcludes(targets: string[], opts: Pick<SweepOptions, 'ports' | 'inputList' | 'exclude' | 'excludeFile'>): Promise<{ space: ProbeSpace; excludes: AddrRange[] }> {
  const specs = [...targets];
  if (opts.inputList) specs.push(...readTargetFile(opts.inputList));
  if (!specs.length) throw usageError('no targets: give TARGET… or -iL FILE');
  const parsed = specs.map(parseTargetSpec);
  const needsPorts = parsed.some((p) => p.kind === 'range' || (p.kind === 'host' && p.port === undefined));
  if (needsPorts && !opts.ports) throw usageError('no ports: give -p PORTS (e.g. -p 80,443) or host:port targets');
  const ports = opts.ports ? parsePorts(opts.ports) : [];
  const { ranges, pairs } = await resolveHosts(parsed);
  const excludes: AddrRange[] = [];
  for (const e of opts.exclude ?? []) excludes.push(...parseExcludeList(e));
  for (const f of opts.excludeFile ?? []) excludes.push(...readExcludeFile(f));
  return { space: new ProbeSpace({ ranges, ports, pairs, excludes }), excludes };
}

/**
 * The run record's (and checkpoint's) fingerprint of a sweep's space: ranges,
 * pairs and ports after parsing, and the excludes as given; seed and shard do
 * not change it, so every shard of a sweep has the same one.
 */
export function sweepFingerprint(space: ProbeSpace, excludes: readonly AddrRange[]): string {
  return spaceFingerprint({ ranges: space.ranges, pairs: space.pairs, ports: space.ports, excludes });
}

/** The shard's slice of the keyed permutation of the space, as a ProbeSource. */
export function orderedSource(space: ProbeSpace, seed: bigint, shard?: Shard): ProbeSource {
  const perm = new Permutation(space.size, seed);
  const slice = shard ? shardSlice(space.size, shard) : { first: 0, step: 1, count: space.size };
  if (slice.count === 0) throw new HalfopenError('E_EMPTY', `shard ${shard!.index}/${shard!.count} is empty: the sweep has only ${space.size} probes`);
  const { first, step } = slice;
  return {
    size: slice.count,
    at: (i) => space.at(perm.at(first + i * step)),
    writeTo: (table, slot, i, sport) => space.writeTo(table, slot, perm.at(first + i * step), sport),
  };
}

/** HALFOPEN_DEBUG=1: milliseconds since process start at each phase, on stderr. */
const phase = (name: string) => { if (process.env.HALFOPEN_DEBUG) process.stderr.write(`halfopen: +${performance.now().toFixed(1)} ms ${name}\n`); };

/** What `--resume STATE` carries into the replayed command. */
export interface ResumeFrom { state: Checkpoint; file: string }

/** Exit codes of a stopped sweep (see README, "Exit codes"). */
export const EXIT_SIGINT = 130;
export const EXIT_SIGTERM = 143;
/** A reader that went away: what a shell reports for a filter killed by SIGPIPE (128 + 13). */
export const EXIT_EPIPE = 141;

type StopReason =
  | { kind: 'signal'; signal: 'SIGINT' | 'SIGTERM' }
  | { kind: 'epipe' }
  | { kind: 'write'; file: string; err: unknown };

/** Checkpoints at least this often (and on SIGINT/SIGTERM). */
const CHECKPOINT_EVERY_MS = 2000;
const STATUS_EVERY_MS = 1000;

/** Opens a file for the run before the first packet; a failure is a usage error naming the flag. */
function openForRun<T>(flag: string, file: string, open: () => T): T {
  try {
    return open();
  } catch (err) {
    throw usageError(`cannot write ${flag} ${file}: ${describeErrno(err)}`);
  }
}

async function sweep(targets: string[], opts: SweepOptions, version: string, argv: string[], resume?: ResumeFrom): Promise<void> {
  phase('arguments parsed');
  const { space, excludes } = await buildSpaceAndExcludes(targets, opts);
  phase('targets resolved');
  const shard = chooseShard(opts);
  let seed: bigint;
  try {
    seed = opts.seed !== undefined ? BigInt(opts.seed) : BigInt.asUintN(64, BigInt(Date.now()) * 0x9e3779b97f4a7c15n ^ BigInt(process.pid));
  } catch {
    throw usageError(`invalid --seed "${opts.seed}": expected an integer`);
  }
  if (shard && opts.seed === undefined) throw usageError(`${opts.shard !== undefined ? '--shard' : '--shards'} needs --seed: every shard must use the same order`);
  const whole = orderedSource(space, seed, shard);
  if (opts.dryRun) return dryRun(whole, opts);

  if (opts.checkpoint && !opts.output) throw usageError('--checkpoint needs -o FILE: a resumed sweep cuts its output file back and continues it');
  const fingerprint = sweepFingerprint(space, excludes);
  // Run records and checkpoints number shards from 0, as Kubernetes numbers pods.
  const shardRecord = shard ? { index: shard.index - 1, count: shard.count } : null;
  const state = resume?.state;
  if (state) {
    if (state.fingerprint !== fingerprint || state.probes !== whole.size)
      throw usageError(`${resume!.file}: the targets, excludes or ports are not those of the checkpointed sweep (a targets or exclude file changed?); start a new sweep`);
    if (JSON.stringify(state.shard) !== JSON.stringify(shardRecord))
      throw usageError(`${resume!.file}: checkpoint of shard ${state.shard ? `${state.shard.index} of ${state.shard.count}` : '(none)'}, this run is shard ${shardRecord ? `${shardRecord.index} of ${shardRecord.count}` : '(none)'} (JOB_COMPLETION_INDEX?)`);
    if (state.complete) {
      process.stderr.write(`halfopen: ${resume!.file}: the sweep is already complete (${state.output.path})\n`);
      return;
    }
  }
  const start = state ? state.position : 0;
  const source: ProbeSource = start === 0 ? whole : {
    size: whole.size - start,
    at: (i) => whole.at(start + i),
    writeTo: (table, slot, i, sport) => whole.writeTo(table, slot, start + i, sport),
  };

  const sources: { sourceIp4?: string; sourceIp6?: string } = {};
  for (const s of opts.sourceIp ?? []) {
    const a = mustParseAddress(s, '--source-ip');
    if (isV4(a)) sources.sourceIp4 = s; else sources.sourceIp6 = s;
  }
  requirePrivileges();
  checkSourceAddresses(sources);

  // ── Every destination is opened before the first packet.
  let stop: StopReason | null = null;
  const ac = new AbortController();
  let sink: OutputSink | null = null;
  const stopRun = (reason: StopReason): void => {
    if (stop) return;
    stop = reason;
    sink?.release();
    ac.abort();
  };
  const outPath = opts.output ? path.resolve(opts.output) : null;
  if (outPath) {
    if (state) {
      let size: number;
      try { size = fs.statSync(outPath).size; } catch (err) { throw usageError(`cannot resume into ${outPath}: ${describeErrno(err)}`); }
      if (size < state.bytes) throw usageError(`cannot resume: ${outPath} has ${size} bytes, fewer than the ${state.bytes} the checkpoint saw written`);
    }
    sink = openForRun('-o', outPath, () => FileSink.open(outPath, (err) => stopRun({ kind: 'write', file: outPath, err }), state?.bytes));
  } else {
    sink = new StreamSink(process.stdout, (err) => stopRun(err.code === 'EPIPE' ? { kind: 'epipe' } : { kind: 'write', file: 'stdout', err }));
  }
  const out = sink;
  const startTime = state ? new Date(state.start) : new Date();
  const writer = createWriter(opts.format, { version, args: argv, startTime });
  const startCounts: StateCounts = state?.counts ?? { open: 0, closed: 0, filtered: 0, unreachable: 0 };
  // Made once the engine is open (and the header written): a sweep that fails to start writes nothing.
  let rows: OrderedRows | null = null;
  const mark = () => rows?.watermark ?? { position: start, bytes: out.bytes, counts: startCounts };
  const before = { sent: state?.sent ?? 0, retried: state?.retried ?? 0, duplicates: state?.duplicates ?? 0, invalid: state?.invalid ?? 0 };
  let live = { sent: 0, answered: 0 };
  let engine: Engine | null = null;

  const checkpointPath = resume ? path.resolve(resume.file) : opts.checkpoint ? path.resolve(opts.checkpoint) : null;
  /**
   * Saves the state at the current mark. The rows below the mark must be on
   * disk before the state says so: the output is synced first (in the thread
   * pool; the sweep goes on meanwhile). After a write error the file may hold
   * less than the mark, so the last good state stands.
   */
  const checkpoint = async (complete: boolean, counters = { ...before, sent: before.sent + live.sent }): Promise<void> => {
    if (!checkpointPath || !outPath) return;
    const m = complete ? { position: whole.size, bytes: out.bytes, counts: mark().counts } : mark();
    const t0 = performance.now();
    await out.durable();
    if (out.error) return;
    const t1 = performance.now();
    await saveCheckpoint(checkpointPath, {
      version: 1, halfopen: version, cwd: resume?.state.cwd ?? process.cwd(), command: argv, seed: seed.toString(),
      shard: shardRecord, fingerprint, probes: whole.size,
      output: { path: outPath, format: opts.format }, position: m.position, bytes: m.bytes, counts: m.counts,
      sent: counters.sent, retried: counters.retried, duplicates: counters.duplicates, invalid: counters.invalid,
      start: startTime.toISOString(), saved: new Date().toISOString(), complete,
    });
    phase(`checkpoint at ${m.position}: output synced in ${(t1 - t0).toFixed(1)} ms, state saved in ${(performance.now() - t1).toFixed(1)} ms`);
  };
  /** The periodic checkpoint in flight, if any. */
  let saving: Promise<void> | null = null;
  const metadataPath = opts.metadataFile ? path.resolve(opts.metadataFile) : null;
  const record = (r: { complete: boolean; counts: StateCounts; sent: number; retried: number; duplicates: number; invalid: number }): void => {
    if (!metadataPath) return;
    writeRunRecord(metadataPath, {
      version: 1, halfopen: version, command: argv, seed: seed.toString(),
      shard: shardRecord, fingerprint,
      output: { path: outPath, format: opts.format, bytes: out.bytes },
      start: startTime.toISOString(), end: new Date().toISOString(), probes: whole.size,
      sent: r.sent, retried: r.retried, counts: r.counts, invalid: r.invalid, duplicates: r.duplicates,
      xdp_mode: engine ? engine.xdpMode ?? 'tc' : 'none', send_path: engine?.sendPath ?? 'none', complete: r.complete,
    });
  };
  let statusFd: number | null = null;
  try {
    if (checkpointPath) await checkpoint(false).catch((err) => { throw usageError(`cannot write --checkpoint ${checkpointPath}: ${describeErrno(err)}`); });
    // A record saying "not complete" from the start: a run killed before its end leaves that, not nothing.
    if (metadataPath) openForRun('--metadata-file', metadataPath, () => record({ complete: false, counts: startCounts, ...before }));
    if (opts.statusUpdates) statusFd = openForRun('--status-updates', opts.statusUpdates, () => fs.openSync(opts.statusUpdates!, 'a'));
  } catch (err) {
    await out.finish();
    throw err;
  }

  const samples = [...space.ranges.map((r) => r.lo), ...space.pairs.map((p) => p.addr)];
  const warn = (m: string) => process.stderr.write(`halfopen: warning: ${m}\n`);
  const engineOpts: EngineOptions = {
    interface: opts.interface, ...sources, sportLo: opts.sourcePorts.lo, sportHi: opts.sourcePorts.hi,
    rate: opts.rate, retries: opts.retries, timeoutMs: opts.timeout, senders: opts.senders,
    sendPath: opts.sendPath, xdpMode: opts.xdpMode, hook: opts.hook, rst: opts.rst, warn,
  };
  try {
    engine = Engine.open(samples, source.size, engineOpts);
  } catch (err) {
    await out.finish();
    if (statusFd !== null) fs.closeSync(statusFd);
    throw err;
  }
  phase(`engine open: ${engine.xdpMode ? `XDP ${engine.xdpMode}` : 'tc ingress'} on ${engine.interface}, ${engine.sendPath} sends, RSTs from ${engine.rstFrom === 'xdp' ? 'XDP' : 'the kernel'}`);
  // A resumed output that is still empty (stopped before its first row) gets its header too.
  if (out.bytes === 0) out.write(writer.header());
  const ordered = new OrderedRows(out, { position: start, counts: startCounts }, checkpointPath !== null);
  rows = ordered;

  const showProgress = opts.progress ?? process.stderr.isTTY;
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
    // A second signal while the output drains to a reader that does not read: give up on it.
    if (stop) process.exit(signal === 'SIGINT' ? EXIT_SIGINT : EXIT_SIGTERM);
    process.stderr.write(`${showProgress ? '\n' : ''}halfopen: interrupted, writing what is known\n`);
    stopRun({ kind: 'signal', signal });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let first = true, lastSaved = Date.now(), lastStatus = 0;
  const trying = (file: string, f: () => void) => {
    try { f(); } catch (err) { stopRun({ kind: 'write', file, err }); }
  };
  let stats: RunStats | null = null;
  let failure: unknown = null;
  try {
    stats = await engine.run(source, (r, seq) => {
      if (first) { first = false; phase('first verdict'); }
      ordered.add(seq, r.state, opts.open && r.state !== 'open' ? '' : writer.row(r));
    }, {
      signal: ac.signal,
      onChunkFinal: (seq, end) => ordered.final(seq, start + end),
      backpressure: () => out.backpressure(),
      onProgress: (p) => {
        live = { sent: p.sent, answered: p.answered };
        ordered.flush();
        const now = Date.now();
        const rate = p.sent / Math.max(p.elapsedS, 1e-3);
        const left = Math.max(0, p.total - p.sent);
        const eta = rate > 0 ? Math.ceil(left / rate) : null;
        if (showProgress)
          process.stderr.write(`\r\x1b[Ksent ${p.sent}/${p.total} (${Math.floor((100 * p.sent) / p.total)}%)  replies ${p.answered}  ${Math.round(rate)}/s${eta ? `  ETA ${eta} s` : ''}`);
        if (statusFd !== null && now - lastStatus >= STATUS_EVERY_MS) {
          lastStatus = now;
          const line = JSON.stringify({ ts: new Date(now).toISOString(), sent: p.sent, replies: p.answered, rate: Math.round(rate), eta_s: eta });
          trying(path.resolve(opts.statusUpdates!), () => fs.writeSync(statusFd!, `${line}\n`));
        }
        if (checkpointPath && !saving && now - lastSaved >= CHECKPOINT_EVERY_MS) {
          lastSaved = now;
          saving = checkpoint(false).catch((err) => stopRun({ kind: 'write', file: checkpointPath, err })).finally(() => { saving = null; });
        }
      },
    });
  } catch (err) {
    failure = err;
  }
  phase('last verdict');
  if (showProgress) process.stderr.write('\r\x1b[K');
  // Detach while the output drains.
  const closing = engine.close();
  const lastCheckpoint = async (complete: boolean, totals?: typeof before): Promise<void> => {
    await saving;
    try { await checkpoint(complete, totals); } catch (err) { warn(`cannot save checkpoint ${checkpointPath}: ${describeErrno(err)}`); }
  };
  try {
    if (failure) {
      // The rows below the watermark stand; a checkpoint lets a resume continue after a send failure too.
      await lastCheckpoint(false);
      record({ complete: false, counts: ordered.received(), ...before, sent: before.sent + live.sent });
      throw failure;
    }
    const s = stats!;
    const totals = { sent: before.sent + s.sent, retried: before.retried + s.retried, duplicates: before.duplicates + s.duplicates, invalid: before.invalid + s.invalid };
    const why = stop as StopReason | null;
    if (why?.kind === 'epipe') {
      // Like a filter killed by SIGPIPE: nothing more on stdout, nothing on stderr.
      trying(metadataPath ?? '', () => record({ complete: false, counts: ordered.received(), ...totals }));
      process.exitCode = EXIT_EPIPE;
      return;
    }
    if (why?.kind === 'write') {
      process.stderr.write(`halfopen: cannot write ${why.file}: ${describeErrno(why.err)}; sweep stopped\n`);
      if (why.file !== checkpointPath) await lastCheckpoint(false, totals);
      if (why.file !== metadataPath) { try { record({ complete: false, counts: ordered.received(), ...totals }); } catch { /* idem */ } }
      process.exitCode = 1;
      return;
    }
    const counts = ordered.flushAll();
    const counter = new SummaryCounter(startTime);
    Object.assign(counter.counts, counts);
    const summary = counter.finish({ sent: totals.sent, retries: totals.retried, duplicates: totals.duplicates, invalid: totals.invalid });
    const complete = !why && PROBE_STATES.reduce((n, k) => n + counts[k], 0) === whole.size;
    out.write(writer.footer(summary));
    // A checkpoint saying "complete" must not outlive the rows it points at.
    if (checkpointPath) await out.durable();
    await out.finish();
    const wrote = out.error as NodeJS.ErrnoException | null;
    if (wrote) {
      // The reader left (or the disk filled) while the last rows went out.
      trying(metadataPath ?? '', () => record({ complete: false, counts, ...totals }));
      if (wrote.code === 'EPIPE' && !outPath) { process.exitCode = EXIT_EPIPE; return; }
      process.stderr.write(`halfopen: cannot write ${outPath ?? 'stdout'}: ${describeErrno(wrote)}; the output is incomplete\n`);
      process.exitCode = 1;
      return;
    }
    await lastCheckpoint(complete, totals);
    try { record({ complete, counts, ...totals }); } catch (err) {
      process.stderr.write(`halfopen: cannot write --metadata-file ${metadataPath}: ${describeErrno(err)}\n`);
      process.exitCode = 1;
    }
    process.stderr.write(`${formatSummaryLine(summary)}${why ? ' (interrupted)' : ''}\n`);
    if (engine.xdpFellBack) warn('XDP ran in generic mode');
    const unseen = unseenRepliesWarning(engine, s);
    if (unseen) warn(unseen);
    if (s.sendErrors.length) warn(`${s.failed} SYNs could not be sent (${s.sendErrors.join(', ')})`);
    if (why?.kind === 'signal') process.exitCode = why.signal === 'SIGINT' ? EXIT_SIGINT : EXIT_SIGTERM;
  } finally {
    if (statusFd !== null) { try { fs.closeSync(statusFd); } catch { /* appended lines stand */ } }
    await out.finish();
    await closing;
    phase('XDP detached, sender threads stopped');
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** --dry-run: the probes in send order, one "ADDRESS PORT" line each. */
async function dryRun(source: ProbeSource, opts: SweepOptions): Promise<void> {
  let failed: unknown = null;
  const outPath = opts.output ? path.resolve(opts.output) : null;
  const out: OutputSink = outPath
    ? openForRun('-o', outPath, () => FileSink.open(outPath, (e) => { failed ??= e; }))
    : new StreamSink(process.stdout, (e) => { failed ??= e; });
  let buf = '';
  for (let i = 0; i < source.size && !failed; i++) {
    const p = source.at(i);
    buf += `${formatAddress(p.addr)} ${p.port}\n`;
    if (buf.length > 65536) {
      out.write(buf);
      buf = '';
      const wait = out.backpressure();
      if (wait) await wait;
    }
  }
  out.write(buf);
  await out.finish();
  if (failed) {
    const e = failed as NodeJS.ErrnoException;
    if (e.code === 'EPIPE' && !outPath) { process.exitCode = EXIT_EPIPE; return; }
    throw new HalfopenError('E_INTERNAL', `cannot write ${outPath ?? 'stdout'}: ${describeErrno(e)}`);
  }
}
