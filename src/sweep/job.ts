// A sweep job: targets → ordered, sharded probe space → run (engine/
// sweep-run.ts) → rows, with its checkpoint and its run record written from
// one SweepState. The command line (src/cli/sweep.ts) only parses arguments
// into SweepJobOptions and maps what run() returns or throws to exit codes.
import fs from 'node:fs';
import path from 'node:path';
import { HalfopenError, usageError } from '../errors';
import { Engine, EngineOptions, ProbeSource, RunStats, checkSourceAddresses, unseenRepliesWarning } from '../engine/engine';
import type { Progress } from '../engine/sweep-run';
import { formatAddress } from '../targets/address';
import { groupCount, isMultiSource, parseSourceList } from './sources';
import { chooseShard, Shard } from '../targets/permutation';
import { createWriter, OutputFormat } from '../output/create-writer';
import type { ResultWriter } from '../output/writer';
import { SummaryCounter, formatSummaryLine, PROBE_STATES } from '../output/summary';
import { OrderedRows, StateCounts, Watermark } from '../output/ordered-rows';
import { FileSink, OutputSink, StreamSink } from '../output/sink';
import { Checkpoint, describeErrno, saveCheckpoint } from './checkpoint';
import { writeRunRecord } from './run-record';
import { buildSpace, orderedSource, fromPosition, SpaceSpec, SweepSpace } from './space';
import { SweepState } from './state';
import { AUTO_DEFAULTS } from '../engine/rtt-estimator';

/** The longest wait after a pass with --timeout auto, unless --max-timeout says otherwise (the former fixed default). */
export const MAX_TIMEOUT_MS = 1000;
import { requirePrivileges } from '../privileges';

export interface SweepJobOptions extends SpaceSpec {
  rate: number;
  retries: number;
  /** The wait after each pass's last SYN, ms, or `auto`: from the RTTs measured, up to maxTimeout. */
  timeout: number | 'auto';
  maxTimeout?: number;
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
  checkpoint?: string;
  metadataFile?: string;
  statusUpdates?: string;
}

/** A checkpointed sweep being continued (`--resume STATE`). */
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

/** HALFOPEN_DEBUG=1: milliseconds since process start at each phase, on stderr. */
export const phase = (name: string): void => { if (process.env.HALFOPEN_DEBUG) process.stderr.write(`halfopen: +${performance.now().toFixed(1)} ms ${name}\n`); };

const warn = (m: string): void => { process.stderr.write(`halfopen: warning: ${m}\n`); };

/** Opens a file for the run before the first packet; a failure is a usage error naming the flag. */
function openForRun<T>(flag: string, file: string, open: () => T): T {
  try {
    return open();
  } catch (err) {
    throw usageError(`cannot write ${flag} ${file}: ${describeErrno(err)}`);
  }
}

function drawSeed(text: string | undefined): bigint {
  try {
    return text !== undefined ? BigInt(text) : BigInt.asUintN(64, BigInt(Date.now()) * 0x9e3779b97f4a7c15n ^ BigInt(process.pid));
  } catch {
    throw usageError(`invalid --seed "${text}": expected an integer`);
  }
}

export class SweepJob {
  /** This shard's whole order, and the part of it this run probes (after a resume's position). */
  readonly whole: ProbeSource;
  readonly source: ProbeSource;
  readonly state: SweepState;
  private readonly start: number;
  private readonly checkpointPath: string | null;
  private readonly metadataPath: string | null;
  private stopReason: StopReason | null = null;
  private readonly ac = new AbortController();
  private out: OutputSink | null = null;
  private rows: OrderedRows | null = null;
  private engine: Engine | null = null;
  private statusFd: number | null = null;
  /** The periodic checkpoint in flight, if any. */
  private saving: Promise<void> | null = null;
  private writer!: ResultWriter;

  private constructor(readonly opts: SweepJobOptions, readonly sweep: SweepSpace, seed: bigint, shard: Shard | undefined,
    version: string, command: string[], private readonly resume?: ResumeFrom) {
    this.whole = orderedSource(sweep.space, seed, shard);
    const saved = resume?.state;
    this.start = saved ? saved.position : 0;
    this.source = fromPosition(this.whole, this.start);
    const outPath = opts.output ? path.resolve(opts.output) : null;
    this.state = new SweepState({
      halfopen: version, command, cwd: saved?.cwd ?? process.cwd(), seed,
      shard: shard ? { index: shard.index - 1, count: shard.count } : null,
      fingerprint: sweep.fingerprint, probes: this.whole.size,
      output: { path: outPath, format: opts.format }, start: saved ? new Date(saved.start) : new Date(),
      addresses: sweep.addresses, excludedByDefault: sweep.excludedByDefault, defaultExcludes: opts.defaultExcludes !== false,
    }, saved);
    this.checkpointPath = resume ? path.resolve(resume.file) : opts.checkpoint ? path.resolve(opts.checkpoint) : null;
    this.metadataPath = opts.metadataFile ? path.resolve(opts.metadataFile) : null;
  }

  /**
   * Builds the space and the order; checks the arguments that need them
   * (seed and shard, a resume against its checkpoint). Sends nothing.
   */
  static async prepare(opts: SweepJobOptions, version: string, command: string[], resume?: ResumeFrom): Promise<SweepJob> {
    phase('arguments parsed');
    const sweep = await buildSpace(opts);
    phase('targets resolved');
    const shard = chooseShard(opts);
    const seed = drawSeed(opts.seed);
    if (shard && opts.seed === undefined) throw usageError(`${opts.shard !== undefined ? '--shard' : '--shards'} needs --seed: every shard must use the same order`);
    return new SweepJob(opts, sweep, seed, shard, version, command, resume);
  }

  /** A resumed sweep that has nothing left to do. */
  private checkResume(): boolean {
    const saved = this.resume?.state;
    if (!saved) return false;
    const file = this.resume!.file, { id } = this.state;
    if (saved.fingerprint !== id.fingerprint || saved.probes !== this.whole.size)
      throw usageError(`${file}: the targets, excludes or ports are not those of the checkpointed sweep (a targets or exclude file changed?); start a new sweep`);
    if (JSON.stringify(saved.shard) !== JSON.stringify(id.shard))
      throw usageError(`${file}: checkpoint of shard ${saved.shard ? `${saved.shard.index} of ${saved.shard.count}` : '(none)'}, this run is shard ${id.shard ? `${id.shard.index} of ${id.shard.count}` : '(none)'} (JOB_COMPLETION_INDEX?)`);
    if (!saved.complete) return false;
    process.stderr.write(`halfopen: ${file}: the sweep is already complete (${saved.output.path})\n`);
    return true;
  }

  /**
   * The source addresses asked for: one per family as the engine's own, or
   * with several in a family, send groups (sources.ts) on raw sockets.
   */
  private sources(): Pick<EngineOptions, 'sourceIp4' | 'sourceIp6' | 'sourceGroups' | 'sendPath'> {
    const list = parseSourceList(this.opts.sourceIp ?? []);
    this.state.sources = [...list.v4, ...list.v6];
    const s: Pick<EngineOptions, 'sourceIp4' | 'sourceIp6' | 'sourceGroups' | 'sendPath'> = { sourceIp4: list.v4[0], sourceIp6: list.v6[0], sendPath: this.opts.sendPath };
    if (!isMultiSource(list)) return s;
    if (this.opts.sendPath === 'packet') throw usageError('--send-path packet sends from one source address: several --source-ip addresses go out on raw sockets (--send-path raw or auto)');
    return { ...s, sourceGroups: { ...list, count: groupCount(list) }, sendPath: 'raw' };
  }

  /**
   * Runs the sweep to its end (or its stop) and returns the exit code: 0,
   * 1 after a write error, 130/143 after SIGINT/SIGTERM, 141 when stdout's
   * reader went away. Throws for usage errors and failures to start.
   * `onStarted`: called once the engine is open, before the first packet.
   */
  async run(onStarted?: () => void): Promise<number> {
    if (this.opts.checkpoint && !this.opts.output) throw usageError('--checkpoint needs -o FILE: a resumed sweep cuts its output file back and continues it');
    if (this.checkResume()) return 0;
    const sources = this.sources();
    requirePrivileges();
    checkSourceAddresses(sources);
    this.openOutput();
    await this.openRunFiles();
    try {
      this.openEngine(sources);
    } catch (err) {
      await this.out!.finish();
      if (this.statusFd !== null) fs.closeSync(this.statusFd);
      throw err;
    }
    onStarted?.();
    const { stats, failure } = await this.runEngine();
    return this.finish(stats, failure);
  }

  /**
   * SIGINT/SIGTERM: stop sending, write what is known. Returns false when
   * the job was already stopping (a second signal: the caller gives up).
   */
  interrupt(signal: 'SIGINT' | 'SIGTERM'): boolean {
    if (this.stopReason) return false;
    process.stderr.write(`${this.showProgress ? '\n' : ''}halfopen: interrupted, writing what is known\n`);
    this.stop({ kind: 'signal', signal });
    return true;
  }

  private get showProgress(): boolean { return this.opts.progress ?? !!process.stderr.isTTY; }

  private stop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.out?.release();
    this.ac.abort();
  }

  /** The output is opened (a resumed one cut back to its checkpoint) before the first packet. */
  private openOutput(): void {
    const outPath = this.state.id.output.path, saved = this.resume?.state;
    if (!outPath) {
      this.out = new StreamSink(process.stdout, (err) => this.stop(err.code === 'EPIPE' ? { kind: 'epipe' } : { kind: 'write', file: 'stdout', err }));
      return;
    }
    if (saved) {
      let size: number;
      try { size = fs.statSync(outPath).size; } catch (err) { throw usageError(`cannot resume into ${outPath}: ${describeErrno(err)}`); }
      if (size < saved.bytes) throw usageError(`cannot resume: ${outPath} has ${size} bytes, fewer than the ${saved.bytes} the checkpoint saw written`);
    }
    this.out = openForRun('-o', outPath, () => FileSink.open(outPath, (err) => this.stop({ kind: 'write', file: outPath, err }), saved?.bytes));
  }

  /** Verdicts known at start: a resumed sweep's, from its checkpoint. */
  private get startCounts(): StateCounts { return this.resume?.state.counts ?? { open: 0, closed: 0, filtered: 0, unreachable: 0 }; }

  private get mark(): Watermark { return this.rows?.watermark ?? { position: this.start, bytes: this.out!.bytes, counts: this.startCounts }; }

  /** The first checkpoint, the run record saying "not complete" and the status file, before the engine opens. */
  private async openRunFiles(): Promise<void> {
    const { id } = this.state;
    this.writer = createWriter(this.opts.format, { version: id.halfopen, args: id.command, startTime: id.start });
    try {
      const cp = this.checkpointPath;
      if (cp) await this.saveCheckpoint(false).catch((err) => { throw usageError(`cannot write --checkpoint ${cp}: ${describeErrno(err)}`); });
      // A record saying "not complete" from the start: a run killed before its end leaves that, not nothing.
      if (this.metadataPath) openForRun('--metadata-file', this.metadataPath, () => this.writeRecord(this.startCounts, false));
      const status = this.opts.statusUpdates;
      if (status) this.statusFd = openForRun('--status-updates', status, () => fs.openSync(status, 'a'));
    } catch (err) {
      await this.out!.finish();
      throw err;
    }
  }

  private openEngine(sources: Pick<EngineOptions, 'sourceIp4' | 'sourceIp6' | 'sourceGroups' | 'sendPath'>): void {
    const { opts } = this, { space } = this.sweep;
    const samples = [...space.ranges.map((r) => r.lo), ...space.pairs.map((p) => p.addr)];
    const engineOpts: EngineOptions = {
      interface: opts.interface, ...sources, sportLo: opts.sourcePorts.lo, sportHi: opts.sourcePorts.hi,
      rate: opts.rate, retries: opts.retries, ...this.timeoutOptions(), senders: opts.senders,
      xdpMode: opts.xdpMode, hook: opts.hook, rst: opts.rst, warn,
    };
    const e = this.engine = Engine.open(samples, this.source.size, engineOpts);
    this.state.xdpMode = e.xdpMode ?? 'tc';
    this.state.sendPath = e.sendPath;
    phase(`engine open: ${e.xdpMode ? `XDP ${e.xdpMode}` : 'tc ingress'} on ${e.interface}, ${e.sendPath} sends, RSTs from ${e.rstFrom === 'xdp' ? 'XDP' : 'the kernel'}`);
    // A resumed output that is still empty (stopped before its first row) gets its header too.
    if (this.out!.bytes === 0) this.out!.write(this.writer.header());
    this.rows = new OrderedRows(this.out!, { position: this.start, counts: this.startCounts }, this.checkpointPath !== null);
  }

  /** The engine's timeout options, and the run record's plan of them. */
  private timeoutOptions(): Pick<EngineOptions, 'timeoutMs' | 'autoTimeout'> {
    const { timeout, maxTimeout } = this.opts;
    if (timeout !== 'auto') {
      this.state.timeout = { mode: 'fixed', ms: timeout };
      return { timeoutMs: timeout, autoTimeout: null };
    }
    const ceiling = maxTimeout ?? MAX_TIMEOUT_MS;
    const a = AUTO_DEFAULTS;
    this.state.timeout = { mode: 'auto', ms: ceiling, floor_ms: Math.min(a.floorMs, ceiling), ceiling_ms: ceiling, quantile: a.quantile, factor: a.factor, samples: 0, rtt_quantile_ms: null };
    return { timeoutMs: ceiling, autoTimeout: a };
  }

  /**
   * Saves the state at the current mark. The rows below the mark must be on
   * disk before the state says so: the output is synced first (in the thread
   * pool; the sweep goes on meanwhile). After a write error the file may hold
   * less than the mark, so the last good state stands.
   */
  private async saveCheckpoint(complete: boolean): Promise<void> {
    if (!this.checkpointPath || !this.out) return;
    const out = this.out;
    const m = complete ? { position: this.whole.size, bytes: out.bytes, counts: this.mark.counts } : this.mark;
    const t0 = performance.now();
    await out.durable();
    if (out.error) return;
    const t1 = performance.now();
    await saveCheckpoint(this.checkpointPath, this.state.checkpoint(m, complete));
    phase(`checkpoint at ${m.position}: output synced in ${(t1 - t0).toFixed(1)} ms, state saved in ${(performance.now() - t1).toFixed(1)} ms`);
  }

  /** The last checkpoint: after the periodic one in flight; a failure is a warning (the rows stand). */
  private async lastCheckpoint(complete: boolean): Promise<void> {
    await this.saving;
    try { await this.saveCheckpoint(complete); } catch (err) { warn(`cannot save checkpoint ${this.checkpointPath}: ${describeErrno(err)}`); }
  }

  private writeRecord(counts: StateCounts, complete: boolean): void {
    if (this.metadataPath) writeRunRecord(this.metadataPath, this.state.record(counts, this.out!.bytes, complete));
  }

  /** Runs a write to a run file; a failure stops the sweep as a write error. */
  private trying(file: string, f: () => void): void {
    try { f(); } catch (err) { this.stop({ kind: 'write', file, err }); }
  }

  private async runEngine(): Promise<{ stats: RunStats | null; failure: unknown }> {
    const rows = this.rows!, out = this.out!, writer = this.writer, onlyOpen = this.opts.open;
    let first = true, stats: RunStats | null = null, failure: unknown = null;
    const last = { saved: Date.now(), status: 0 };
    try {
      stats = await this.engine!.run(this.source, (r, seq) => {
        if (first) { first = false; phase('first verdict'); }
        rows.add(seq, r.state, onlyOpen && r.state !== 'open' ? '' : writer.row(r));
      }, {
        signal: this.ac.signal,
        onChunkFinal: (seq, end) => rows.final(seq, this.start + end),
        backpressure: () => out.backpressure(),
        onProgress: (p) => this.progress(p, last),
      });
    } catch (err) {
      failure = err;
    }
    phase('last verdict');
    if (this.showProgress) process.stderr.write('\r\x1b[K');
    return { stats, failure };
  }

  /** Every 200 ms of the run: the progress line, the status file, the periodic checkpoint. */
  private progress(p: Progress, last: { saved: number; status: number }): void {
    this.state.setRun({ sent: p.sent });
    this.rows!.flush();
    const now = Date.now();
    const rate = p.sent / Math.max(p.elapsedS, 1e-3);
    const left = Math.max(0, p.total - p.sent);
    const eta = rate > 0 ? Math.ceil(left / rate) : null;
    if (this.showProgress)
      process.stderr.write(`\r\x1b[Ksent ${p.sent}/${p.total} (${Math.floor((100 * p.sent) / p.total)}%)  replies ${p.answered}  ${Math.round(rate)}/s${eta ? `  ETA ${eta} s` : ''}`);
    if (this.statusFd !== null && now - last.status >= STATUS_EVERY_MS) {
      last.status = now;
      const line = JSON.stringify({ ts: new Date(now).toISOString(), sent: p.sent, replies: p.answered, rate: Math.round(rate), eta_s: eta });
      const fd = this.statusFd;
      this.trying(path.resolve(this.opts.statusUpdates!), () => fs.writeSync(fd, `${line}\n`));
    }
    const cp = this.checkpointPath;
    if (cp && !this.saving && now - last.saved >= CHECKPOINT_EVERY_MS) {
      last.saved = now;
      this.saving = this.saveCheckpoint(false).catch((err) => this.stop({ kind: 'write', file: cp, err })).finally(() => { this.saving = null; });
    }
  }

  /** After the run: the last rows, footer, checkpoint and run record; the engine detached; the exit code. */
  private async finish(stats: RunStats | null, failure: unknown): Promise<number> {
    // Detach while the output drains.
    const closing = this.engine!.close();
    try {
      if (failure) {
        // The rows below the watermark stand; a checkpoint lets a resume continue after a send failure too.
        await this.lastCheckpoint(false);
        this.writeRecord(this.rows!.received(), false);
        throw failure;
      }
      const s = stats!;
      this.state.setRun({ sent: s.sent, retried: s.retried, duplicates: s.duplicates, invalid: s.invalid });
      if (this.state.timeout) this.state.timeout = { ...this.state.timeout, ms: s.timeout.ms, ...(s.timeout.mode === 'auto' ? { samples: s.timeout.samples, rtt_quantile_ms: s.timeout.rttQuantileMs } : {}) };
      const why = this.stopReason as StopReason | null;
      if (why?.kind === 'epipe') {
        // Like a filter killed by SIGPIPE: nothing more on stdout, nothing on stderr.
        this.trying(this.metadataPath ?? '', () => this.writeRecord(this.rows!.received(), false));
        return EXIT_EPIPE;
      }
      if (why?.kind === 'write') {
        process.stderr.write(`halfopen: cannot write ${why.file}: ${describeErrno(why.err)}; sweep stopped\n`);
        if (why.file !== this.checkpointPath) await this.lastCheckpoint(false);
        if (why.file !== this.metadataPath) { try { this.writeRecord(this.rows!.received(), false); } catch { /* idem */ } }
        return 1;
      }
      return await this.complete(s, why);
    } finally {
      if (this.statusFd !== null) { try { fs.closeSync(this.statusFd); } catch { /* appended lines stand */ } }
      await this.out!.finish();
      await closing;
      phase('XDP detached, sender threads stopped');
    }
  }

  /** A run that ended (or was interrupted by a signal) with its output writable: footer, records, summary. */
  private async complete(s: RunStats, why: StopReason | null): Promise<number> {
    const out = this.out!, rows = this.rows!, outPath = this.state.id.output.path;
    const counts = rows.flushAll();
    const counter = new SummaryCounter(this.state.id.start);
    Object.assign(counter.counts, counts);
    const t = this.state.totals;
    const summary = counter.finish({ sent: t.sent, retries: t.retried, duplicates: t.duplicates, invalid: t.invalid });
    const complete = !why && PROBE_STATES.reduce((n, k) => n + counts[k], 0) === this.whole.size;
    out.write(this.writer.footer(summary));
    // A checkpoint saying "complete" must not outlive the rows it points at.
    if (this.checkpointPath) await out.durable();
    await out.finish();
    const wrote = out.error as NodeJS.ErrnoException | null;
    if (wrote) {
      // The reader left (or the disk filled) while the last rows went out.
      this.trying(this.metadataPath ?? '', () => this.writeRecord(counts, false));
      if (wrote.code === 'EPIPE' && !outPath) return EXIT_EPIPE;
      process.stderr.write(`halfopen: cannot write ${outPath ?? 'stdout'}: ${describeErrno(wrote)}; the output is incomplete\n`);
      return 1;
    }
    await this.lastCheckpoint(complete);
    let code = 0;
    try { this.writeRecord(counts, complete); } catch (err) {
      process.stderr.write(`halfopen: cannot write --metadata-file ${this.metadataPath}: ${describeErrno(err)}\n`);
      code = 1;
    }
    const excluded = this.sweep.excludedByDefault;
    const note = excluded > 0n ? `; ${excluded} probes excluded by the default exclusions` : '';
    process.stderr.write(`${formatSummaryLine(summary)}${note}${why ? ' (interrupted)' : ''}\n`);
    this.warnAfter(s);
    if (why?.kind === 'signal') return why.signal === 'SIGINT' ? EXIT_SIGINT : EXIT_SIGTERM;
    return code;
  }

  private warnAfter(s: RunStats): void {
    const engine = this.engine!;
    if (engine.xdpFellBack) warn('XDP ran in generic mode');
    const unseen = unseenRepliesWarning(engine, s);
    if (unseen) warn(unseen);
    if (s.sendErrors.length) warn(`${s.failed} SYNs could not be sent (${s.sendErrors.join(', ')})`);
  }

  /** What the sweep would do, in lines for stderr: probes, addresses, exclusions, waits. */
  plan(): string[] {
    const { space } = this.sweep, { id } = this.state, o = this.opts;
    const P = space.ports.length;
    const size = `${space.size} probes: ${space.addressCount} addresses × ${P} port${P === 1 ? '' : 's'}${space.pairs.length ? ` + ${space.pairs.length} address:port pairs` : ''}`;
    const shard = id.shard ? `; shard ${id.shard.index} of ${id.shard.count}: ${this.whole.size} probes` : '';
    const lines = [`plan: ${size} (${id.addresses} addresses in all, after excludes)${shard}`];
    if (o.defaultExcludes === false) lines.push('default exclusions: off (--no-default-excludes)');
    else {
      const rows = this.sweep.excludedRows.map((r) => `${r.row.cidr} ${r.addresses} addresses`).join(', ');
      lines.push(`${this.sweep.excludedByDefault} probes excluded by the default exclusions${rows ? ` (${rows})` : ''}`);
    }
    const t = o.timeout === 'auto' ? `auto, ${Math.min(AUTO_DEFAULTS.floorMs, o.maxTimeout ?? MAX_TIMEOUT_MS)}-${o.maxTimeout ?? MAX_TIMEOUT_MS} ms from the RTTs measured` : `${o.timeout} ms`;
    const src = parseSourceList(o.sourceIp ?? []);
    if (isMultiSource(src)) lines.push(`sources: ${[...src.v4, ...src.v6].join(', ')}: the probe at place P of the order leaves from its family's address P mod ${[src.v4.length, src.v6.length].filter(Boolean).join(' or ')}`);
    lines.push(`wait after each pass's last SYN: ${t}; ${o.retries} retr${o.retries === 1 ? 'y' : 'ies'}; nothing is sent (--dry-run)`);
    return lines;
  }

  /** --dry-run: the plan on stderr, the probes in send order on stdout ("ADDRESS PORT" per line); nothing is sent. Returns the exit code. */
  async dryRun(): Promise<number> {
    process.stderr.write(this.plan().map((l) => `halfopen: ${l}\n`).join(''));
    let failed: unknown = null;
    const outPath = this.state.id.output.path, source = this.whole;
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
    if (!failed) return 0;
    const e = failed as NodeJS.ErrnoException;
    if (e.code === 'EPIPE' && !outPath) return EXIT_EPIPE;
    throw new HalfopenError('E_INTERNAL', `cannot write ${outPath ?? 'stdout'}: ${describeErrno(e)}`);
  }
}
