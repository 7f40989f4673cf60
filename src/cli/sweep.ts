// `halfopen sweep`: one-shot half-open scan of targets × ports. Results stream
// to stdout (or -o) as verdicts arrive; progress and the summary go to stderr.
// This file parses the arguments; the sweep itself is a SweepJob (src/sweep/job.ts).
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { usageError } from '../errors';
import { parseFormat, OutputFormat } from '../output/create-writer';
import { describeErrno, readCheckpoint, removeStaleSaves } from '../sweep/checkpoint';
import { SweepJob, SweepJobOptions, ResumeFrom, EXIT_SIGINT, EXIT_SIGTERM } from '../sweep/job';
import { intOption, portRangeOption, choiceOption } from './options';


/** What commander hands the action: the job's options, with the targets apart, and the CLI's own. */
export interface SweepOptions extends Omit<SweepJobOptions, 'targets'> {
  dryRun?: boolean;
  resume?: string;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

const timeoutMs = intOption('--timeout', 1, 600_000);
function timeoutOption(value: string): number | 'auto' {
  if (value.trim() === 'auto') return 'auto';
  try { return timeoutMs(value); } catch { throw usageError(`invalid --timeout "${value}": expected auto or a whole number of ms from 1 to 600000`); }
}

/** Flags a `--resume` command line may carry besides the state file. */
const RESUME_FLAGS = new Set(['resume', 'progress']);

/** Adds `sweep` to `program`. `resume` replays a checkpointed sweep. */
export function registerSweep(program: Command, version: string, resume?: ResumeFrom): void {
  program
    .command('sweep')
    .description('half-open scan of TARGET… × PORTS; results on stdout, summary on stderr')
    .argument('[targets...]', 'address, CIDR, range a-b, host:port, [v6]:port or hostname')
    .option('-p, --ports <ports>', 'ports to probe, e.g. 80,443,8000-8100')
    .option('--input-list <file>', 'read targets from FILE, one per line, # comments (also -iL FILE)')
    .option('--rate <pps>', 'SYNs per second over all senders, 0 = as fast as possible', intOption('--rate', 0, 100_000_000), 10_000)
    .option('--retries <n>', 'resend SYNs that got no reply this many times', intOption('--retries', 0, 10), 1)
    .option('--timeout <ms|auto>', 'wait for replies after the last SYN of each pass: MS, or auto (from the RTTs measured, 50 ms to --max-timeout)', timeoutOption, 'auto' as const)
    .option('--max-timeout <ms>', 'the longest wait of --timeout auto (default: 1000)', intOption('--max-timeout', 1, 600_000))
    .option('--exclude <spec>', 'exclude addresses: address, CIDR or range, comma-separated (repeatable)', collect)
    .option('--exclude-file <file>', 'exclude the addresses listed in FILE (repeatable)', collect)
    .option('--no-default-excludes', 'also probe loopback, link-local, multicast and reserved blocks (left out by default, see docs/sweep.md)')
    .option('--allow-large', 'sweep more than 2^24 addresses (refused without it)')
    .option('--interface <if>', 'send and listen on this interface (default: from the route)')
    .option('--source-ip <ip>', 'source addresses: an address, a list, a range a-b or a CIDR, per family (repeatable); with several, the probe at place P of the order leaves from address P mod K of its family (default: from the route)', collect)
    .addOption(new Option('--source-ports <lo-hi>', 'source-port range of the probes (kept free of local sockets)').argParser(portRangeOption('--source-ports')).default({ lo: 61000, hi: 61999 }, '61000-61999'))
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
    .option('--dry-run', 'print the plan (probes, addresses, exclusions) on stderr and the probes in send order ("ADDRESS PORT" per line), and send nothing')
    .option('--xdp-mode <mode>', 'auto (generic on veth, else native with generic as fallback), native or generic', choiceOption('--xdp-mode', ['auto', 'native', 'generic'] as const), 'auto' as const)
    .option('--hook <hook>', 'where replies are matched: auto (XDP when the interface\'s XDP hook is free, else tc ingress), xdp or tc', choiceOption('--hook', ['auto', 'xdp', 'tc'] as const), 'auto' as const)
    .option('--rst <who>', 'who answers a SYN+ACK with the RST: auto (XDP in generic mode with AF_PACKET sends, else the kernel), xdp or kernel', choiceOption('--rst', ['auto', 'xdp', 'kernel'] as const), 'auto' as const)
    .option('--checkpoint <file>', 'save the progress to FILE every 2 s and on SIGINT/SIGTERM (needs -o); continue with --resume FILE')
    .option('--resume <file>', 'continue the sweep whose --checkpoint is FILE (no other arguments)')
    .option('--metadata-file <file>', 'write a JSON run record to FILE (seed, shard, fingerprint, counts, complete)')
    .option('--status-updates <file>', 'append one JSON line of progress per second to FILE')
    .action(async (targets: string[], opts: SweepOptions, cmd: Command) => {
      if (resume) return sweep(targets, opts, version, resume.state.command, resume);
      if (opts.resume === undefined) return sweep(targets, opts, version, process.argv.slice(2));
      await replayCheckpoint(targets, opts.resume, opts, cmd, version);
    });
}

/** `--resume STATE`: the saved command, with the seed it drew if it had none, and progress as asked now. */
async function replayCheckpoint(targets: string[], resumeFile: string, opts: SweepOptions, cmd: Command, version: string): Promise<void> {
  const extra = cmd.options.map((o) => o.attributeName()).filter((k) => !RESUME_FLAGS.has(k) && cmd.getOptionValueSource(k) === 'cli');
  if (targets.length || extra.length) throw usageError('--resume takes only the checkpoint file: the sweep continues with the arguments it was started with');
  const state = readCheckpoint(resumeFile);
  if (state.halfopen !== version) throw usageError(`${resumeFile} was written by halfopen ${state.halfopen}, this is ${version}: the probe order may differ; start a new sweep`);
  const file = path.resolve(resumeFile);
  removeStaleSaves(file);
  try { process.chdir(state.cwd); } catch (err) { throw usageError(`cannot resume in ${state.cwd}: ${describeErrno(err)}`); }
  // The saved command, with the seed it drew if it had none, and progress as asked now.
  const replay = new Command('halfopen').exitOverride().configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `halfopen: ${s}` : s) });
  registerSweep(replay, version, { state, file });
  const progress = cmd.getOptionValueSource('progress') === 'cli' ? [opts.progress ? '--progress' : '--no-progress'] : [];
  await replay.parseAsync([...state.command.map((a) => (a === '-iL' ? '--input-list' : a)), '--seed', state.seed, ...progress], { from: 'user' });
}

/**
 * Runs a sweep job: the arguments become its options, signals its stops,
 * its result the exit code.
 */
async function sweep(targets: string[], opts: SweepOptions, version: string, argv: string[], resume?: ResumeFrom): Promise<void> {
  if (opts.maxTimeout !== undefined && opts.timeout !== 'auto') throw usageError(`--max-timeout bounds --timeout auto; with --timeout ${opts.timeout} the wait is fixed`);
  const job = await SweepJob.prepare({ ...opts, targets }, version, argv, resume);
  if (opts.dryRun) { process.exitCode = await job.dryRun(); return; }
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
    // A second signal while the output drains to a reader that does not read: give up on it.
    if (!job.interrupt(signal)) process.exit(signal === 'SIGINT' ? EXIT_SIGINT : EXIT_SIGTERM);
  };
  try {
    // From the first packet on, a signal stops the sweep and writes what is known.
    const code = await job.run(() => {
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
    if (code !== 0) process.exitCode = code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
