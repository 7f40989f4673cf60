// `halfopen sweep`: one-shot half-open scan of targets × ports. Results stream
// to stdout (or -o) as verdicts arrive; progress and the summary go to stderr.
import fs from 'node:fs';
import os from 'node:os';
import { Command, Option } from 'commander';
import { HalfopenError, usageError } from '../errors';
import { Engine, EngineOptions, ProbeSource, unseenRepliesWarning } from '../engine/engine';
import { parsePorts } from '../targets/ports';
import { parseTargetSpec, readTargetFile, resolveHosts, parseExcludeList, readExcludeFile, ProbeSpace, AddrRange } from '../targets/target-set';
import { formatAddress, mustParseAddress, isV4 } from '../targets/address';
import { Permutation, parseShard, shardSlice, Shard } from '../targets/permutation';
import { createWriter, parseFormat, OutputFormat } from '../output/create-writer';
import { SummaryCounter, formatSummaryLine } from '../output/summary';
import { intOption, portRangeOption, choiceOption } from './options';
import { requirePrivileges } from './privileges';

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
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerSweep(program: Command, version: string): void {
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
    .option('--shard <i/n>', 'probe only shard I of N of the same order (needs the same --seed everywhere)')
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
    .action(async (targets: string[], opts: SweepOptions) => {
      await sweep(targets, opts, version, process.argv.slice(2));
    });
}

/** Builds the probe space of a sweep from its command-line targets. */
export async function buildSpace(targets: string[], opts: Pick<SweepOptions, 'ports' | 'inputList' | 'exclude' | 'excludeFile'>): Promise<ProbeSpace> {
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
  return new ProbeSpace({ ranges, ports, pairs, excludes });
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

async function sweep(targets: string[], opts: SweepOptions, version: string, argv: string[]): Promise<void> {
  phase('arguments parsed');
  const space = await buildSpace(targets, opts);
  phase('targets resolved');
  const shard = opts.shard ? parseShard(opts.shard) : undefined;
  let seed: bigint;
  try {
    seed = opts.seed !== undefined ? BigInt(opts.seed) : BigInt.asUintN(64, BigInt(Date.now()) * 0x9e3779b97f4a7c15n ^ BigInt(process.pid));
  } catch {
    throw usageError(`invalid --seed "${opts.seed}": expected an integer`);
  }
  if (shard && opts.seed === undefined) throw usageError('--shard needs --seed: every shard must use the same order');
  const source = orderedSource(space, seed, shard);
  if (opts.dryRun) {
    const out = opts.output ? fs.createWriteStream(opts.output) : process.stdout;
    let buf = '';
    for (let i = 0; i < source.size; i++) {
      const p = source.at(i);
      buf += `${formatAddress(p.addr)} ${p.port}\n`;
      if (buf.length > 65536) { out.write(buf); buf = ''; }
    }
    out.write(buf);
    if (out !== process.stdout) await new Promise<void>((r) => (out as fs.WriteStream).end(r));
    return;
  }

  const sources: { sourceIp4?: string; sourceIp6?: string } = {};
  for (const s of opts.sourceIp ?? []) {
    const a = mustParseAddress(s, '--source-ip');
    if (isV4(a)) sources.sourceIp4 = s; else sources.sourceIp6 = s;
  }
  requirePrivileges();

  // The first address of each family finds the route (and the interface to attach to).
  const samples = [...space.ranges.map((r) => r.lo), ...space.pairs.map((p) => p.addr)];

  const warn = (m: string) => process.stderr.write(`halfopen: warning: ${m}\n`);
  const engineOpts: EngineOptions = {
    interface: opts.interface, ...sources, sportLo: opts.sourcePorts.lo, sportHi: opts.sourcePorts.hi,
    rate: opts.rate, retries: opts.retries, timeoutMs: opts.timeout, senders: opts.senders,
    sendPath: opts.sendPath, xdpMode: opts.xdpMode, hook: opts.hook, rst: opts.rst, warn,
  };
  const engine = Engine.open(samples, source.size, engineOpts);
  phase(`engine open: ${engine.xdpMode ? `XDP ${engine.xdpMode}` : 'tc ingress'} on ${engine.interface}, ${engine.sendPath} sends, RSTs from ${engine.rstFrom === 'xdp' ? 'XDP' : 'the kernel'}`);
  let first = true;

  const out = opts.output ? fs.createWriteStream(opts.output) : process.stdout;
  const writer = createWriter(opts.format, { version, args: argv });
  const counter = new SummaryCounter();
  let buf = writer.header();
  const flush = () => { if (buf) { out.write(buf); buf = ''; } };
  const showProgress = opts.progress ?? process.stderr.isTTY;
  const ac = new AbortController();
  const onSignal = () => {
    if (ac.signal.aborted) return;
    process.stderr.write('\nhalfopen: interrupted, writing what is known\n');
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const stats = await engine.run(source, (r) => {
      if (first) { first = false; phase('first verdict'); }
      counter.add(r);
      if (opts.open && r.state !== 'open') return;
      buf += writer.row(r);
      if (buf.length > 65536) flush();
    }, {
      signal: ac.signal,
      onProgress: showProgress ? (p) => {
        flush();
        const rate = p.sent / Math.max(p.elapsedS, 1e-3);
        const left = Math.max(0, p.total - p.sent);
        const eta = rate > 0 && left > 0 ? `  ETA ${Math.ceil(left / rate)} s` : '';
        process.stderr.write(`\r\x1b[Ksent ${p.sent}/${p.total} (${Math.floor((100 * p.sent) / p.total)}%)  replies ${p.answered}  ${Math.round(rate)}/s${eta}`);
      } : undefined,
    });
    phase('last verdict');
    // Results and summary first: stopping the sender threads takes a while and changes nothing.
    if (showProgress) process.stderr.write('\r\x1b[K');
    const summary = counter.finish({ sent: stats.sent, retries: stats.retried, duplicates: stats.duplicates, invalid: stats.invalid });
    buf += writer.footer(summary);
    flush();
    if (out !== process.stdout) await new Promise<void>((r) => (out as fs.WriteStream).end(r));
    process.stderr.write(`${formatSummaryLine(summary)}${stats.interrupted ? ' (interrupted)' : ''}\n`);
    if (engine.xdpFellBack) warn('XDP ran in generic mode');
    const unseen = unseenRepliesWarning(engine, stats);
    if (unseen) warn(unseen);
    if (stats.sendErrors.length) warn(`${stats.failed} SYNs could not be sent (${stats.sendErrors.join(', ')})`);
    if (stats.interrupted) process.exitCode = 130;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // XDP is detached when close() returns its promise; the sender threads
    // finish stopping meanwhile, or with the process (see main.ts).
    void engine.close();
    phase('XDP detached');
  }
}
