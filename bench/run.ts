// npm run bench [-- --quick] [--runs N] [--check-runs N] [--only id,id] [--list]
//
// Runs every benchmark scenario in order, each on its own namespace fleet,
// halfopen and its peers on the same work in the same run: sweeps (zmap,
// masscan, nmap), the send-path ceiling, the single check, the sidecar
// (bench/serve.ts). A failing scenario is reported as failed
// and the others run on. Prints the markdown report and writes it, the raw
// runs as JSON and an SVG chart to bench/results/.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BenchContext, ROOT, Scenario } from './lib';
import { sweep65k, sweep1m, sweep16m } from './sweep';
import { sendPathScenario } from './send-path';
import { sweepOutputScenario } from './sweep-output';
import { sweepTimeoutScenario } from './sweep-timeout';
import { checkScenario } from './check';
import { soakScenario } from './soak';
import { farmguardianScenario } from './farmguardian';
import { probeScenario } from './probe';
import { pushScenario } from './push';
import { serveScenario, serveHookScenario } from './serve';
import { serveScale100k, serveScale1m } from './serve-scale';
import { microScenario } from './micro';
import { farmguardianViaScenario } from './farmguardian-via';
import { agentCostScenario } from './agent-cost';
import { Report, ScenarioOutcome, machineFacts, num, renderMarkdown, renderSeriesSvg, renderSvg } from './report';

interface Entry {
  id: string;
  about: string;
  /** The scenario, or why it cannot run. */
  load: () => Scenario | string;
  fullOnly?: boolean;
  /**
   * Run after the others, and in a full run only while the whole run stays
   * within its 15-minute budget (an explicit --only always runs it).
   */
  ifTimeAllows?: boolean;
  /** Repetitions for this scenario instead of --runs. */
  runs?: (o: Options) => number;
}

interface Options { quick: boolean; runs: number; checkRuns: number; only: string[] | null; list: boolean }

const SCENARIOS: Entry[] = [
  // Half a second of wall time moves by ±10 % with this machine's noise: 5 rounds for a steadier median.
  { id: 'sweep65k', about: '65,536 targets × 1 port, 6.6 % silent, fleet NAPI in its own thread: halfopen, zmap (-c 1 and -c 3), masscan, nmap, 5 rounds (quick: 4,096)', load: () => sweep65k, runs: (o) => (o.quick ? o.runs : Math.max(o.runs, 5)) },
  { id: 'sweep1m', about: '1,048,576 probes, 16 ports × a /16, 6.6 % silent, fleet NAPI in its own thread: halfopen, masscan, zmap (once per port), nmap on a 4,096-target subset (quick: 65,536)', load: () => sweep1m },
  {
    id: 'sweep16m',
    about: '16,777,216 probes to an IPv6 /104 that drops everything: flat memory (~50 s; not in quick mode; runs last, when the run has time left in its 15-minute budget)',
    load: () => sweep16m, fullOnly: true, ifTimeAllows: true,
  },
  { id: 'sweep-output', about: 'output delivered whole: 1,048,576 probes with -o, -o --checkpoint, and | cat > FILE (quick: 65,536)', load: () => sweepOutputScenario },
  { id: 'sweep-timeout', about: 'time to a complete result with 6.6 % of a /16 silent: --timeout auto vs fixed 1000 and 500 ms vs zmap -r 0 -c 1 (quick: a /20)', load: () => sweepTimeoutScenario },
  { id: 'send-path', about: 'send-path ceiling: 1,048,576 SYNs into XDP_DROP, raw vs AF_PACKET, 1 vs 2 senders (quick: 65,536)', load: () => sendPathScenario },
  { id: 'soak', about: 'serve soak: 10,000 backends at 1 s, 10 % silent, 5 % flapping, SIGHUP every 30 s, scrapes; CPU, RSS, lateness, detection, lost checks (180 s; quick: 60 s; HALFOPEN_SOAK_SECONDS)', load: () => soakScenario, runs: () => 1 },
  { id: 'check', about: 'single check: native check_tcp_half_open vs check_tcp vs halfopen check vs node -e 0 vs the nmap wrapper, whole-process time (50 runs; quick: 10)', load: () => checkScenario, runs: (o) => o.checkRuns },
  { id: 'probe', about: '/probe at 100 concurrent scrapers: probes/s and CPU per probe, serve vs blackbox_exporter tcp_connect, same targets (8 s rounds; quick: 3 s)', load: () => probeScenario },
  { id: 'farmguardian', about: 'farmguardian round: 200 backends (190 open, 5 closed, 5 dropped) checked one after another from Perl, a 1 s budget for every check command (-t 1, nmap --host-timeout 1s) (quick: 40)', load: () => farmguardianScenario, runs: () => 1 },
  { id: 'farmguardian-via', about: 'farmguardian round through the daemon: 200 backends (10 silent), direct vs check_tcp_half_open --via, configured and learned (quick: 40)', load: () => farmguardianViaScenario, runs: () => 1 },
  { id: 'agent-cost', about: 'agent-check responder: serve CPU per 1,000 agent connections at a steady connection rate, idle CPU subtracted (HALFOPEN_BENCH_REF=DIR adds a row for another build)', load: () => agentCostScenario, runs: (o) => o.runs },
  {
    id: 'serve',
    about: 'sidecar: halfopen serve vs HAProxy doing its own TCP checks (bench/serve.ts)',
    load: () => serveScenario,
  },
  {
    id: 'push',
    about: 'verdicts to HAProxy: its own checks vs serve + agent-check vs serve + Runtime API push, 9,000 backends at 1 s: CPU per process, propagation p50/p99/max (quick: 2,000)',
    load: () => pushScenario, runs: () => 1,
  },
  {
    id: 'serve-100k',
    about: 'serve at fleet scale: 100,000 backends at 1 s, 10 % silent, 2 % flapping: checks sent vs due, lateness, RSS, CPU per check vs sweep per probe, /metrics scrapes, SIGHUP of 1 %, 10,000 vs HAProxy (quick: 20,000)',
    load: () => serveScale100k, runs: () => 1,
  },
  {
    id: 'serve-1m',
    about: 'serve at fleet scale: 1,000,000 backends (16 ports × a /16) at 10 s, 10 % silent, 2 % flapping: start-up, checks sent vs due, lateness, RSS, CPU per check vs sweep per probe (quick: 100,000)',
    load: () => serveScale1m, runs: () => 1,
  },
  { id: 'micro', about: 'index arithmetic: Permutation.at and ProbeSpace.at calls/s (no fleet, no privileges)', load: () => microScenario },
  {
    id: 'serve-hook',
    about: 'sidecar on each hook: halfopen serve with the matcher at XDP, at tc ingress, and at tc behind an XDP_PASS program (1,000 and 10,000 backends; quick: 1,000)',
    load: () => serveHookScenario,
  },
];

function usage(msg: string): never {
  process.stderr.write(`bench: ${msg}\nusage: npm run bench [-- --quick] [--runs N] [--check-runs N] [--only ${SCENARIOS.map((s) => s.id).join(',')}] [--list]\n`);
  process.exit(2);
}

function parse(argv: string[]): Options {
  const o: Options = { quick: false, runs: 0, checkRuns: 0, only: null, list: false };
  const int = (flag: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) usage(`${flag} expects a positive whole number, got "${v ?? ''}"`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--list') o.list = true;
    else if (a === '--runs') o.runs = int(a, argv[++i]);
    else if (a === '--check-runs') o.checkRuns = int(a, argv[++i]);
    else if (a === '--only') {
      const v = argv[++i];
      if (!v) usage('--only expects scenario ids, e.g. --only sweep65k,check');
      o.only = v.split(',').filter(Boolean);
      // A prefix selects a family: --only sweep runs sweep65k, sweep1m and sweep16m.
      for (const id of o.only) if (!SCENARIOS.some((s) => s.id.startsWith(id))) usage(`unknown scenario "${id}" (see --list)`);
    } else usage(`unknown option "${a}"`);
  }
  o.runs ||= o.quick ? 1 : 3;
  o.checkRuns ||= o.quick ? 10 : 50;
  return o;
}

/** The default run must finish within 15 minutes; sweep16m (~50 s) starts only before this. */
const BUDGET_START_LAST_S = 13.75 * 60;

const stamp = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');

async function main(): Promise<void> {
  const opts = parse(process.argv.slice(2));
  if (opts.list) {
    for (const s of SCENARIOS) process.stdout.write(`${s.id.padEnd(10)} ${s.about}\n`);
    return;
  }
  if (process.getuid?.() !== 0) usage('needs root: namespaces, XDP and raw sockets');
  const t0 = process.hrtime.bigint();
  const since = () => Number(process.hrtime.bigint() - t0) / 1e9;
  const startedAt = new Date().toISOString();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-bench-'));

  // Ctrl-C or SIGTERM. Node runs this handler only between synchronous waits
  // for children: a Ctrl-C also stops the measured child, which stops its
  // scenario (stopIfInterrupted) and runs its finally blocks; then this
  // removes whatever namespaces of this process are left and exits.
  // (Fleet listeners exit by themselves when their stdin, our pipe, closes.)
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\nbench: ${sig}: removing this run's namespaces\n`);
    let names: string[] = [];
    try { names = fs.readdirSync('/run/netns'); } catch { /* none */ }
    for (const ns of names) if (new RegExp(`^ho${process.pid}x\\d+[pf]$`).test(ns)) spawnSync('ip', ['netns', 'del', ns]);
    fs.rmSync(tmp, { recursive: true, force: true });
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const outcomes: ScenarioOutcome[] = [];
  // An exact id selects that scenario alone (--only serve is not serve-hook); any other prefix a family.
  const picks = (id: string, s: Entry) => (SCENARIOS.some((x) => x.id === id) ? s.id === id : s.id.startsWith(id));
  const selected = SCENARIOS.filter((s) => !opts.only || opts.only.some((id) => picks(id, s)));
  const order = [...selected.filter((s) => !s.ifTimeAllows), ...selected.filter((s) => s.ifTimeAllows)];
  try {
    for (const s of order) {
      // One turn of the event loop: a pending Ctrl-C runs its handler (below) before the next fleet is built.
      await new Promise((r) => setImmediate(r));
      const s0 = since();
      if (s.fullOnly && opts.quick) {
        outcomes.push({ id: s.id, status: 'skipped', seconds: 0, reason: `Not run in quick mode: ${s.about}.` });
        continue;
      }
      if (s.ifTimeAllows && !opts.only?.includes(s.id) && since() > BUDGET_START_LAST_S) {
        const reason = `Skipped to keep the run within 15 minutes: ${num(since() / 60, 1)} min had gone by. \`npm run bench -- --only ${s.id}\` runs it alone.`;
        process.stderr.write(`bench: ${s.id}: ${reason}\n`);
        outcomes.push({ id: s.id, status: 'skipped', seconds: 0, reason });
        continue;
      }
      const scenario = s.load();
      if (typeof scenario === 'string') {
        process.stderr.write(`bench: ${s.id}: skipped: ${scenario}\n`);
        outcomes.push({ id: s.id, status: 'skipped', seconds: 0, reason: `Skipped: ${scenario}.` });
        continue;
      }
      process.stderr.write(`bench: ${s.id} (${s.about})\n`);
      const ctx: BenchContext = {
        quick: opts.quick,
        runs: s.runs ? s.runs(opts) : opts.runs,
        tmp,
        log: (m) => process.stderr.write(`  [${since().toFixed(0).padStart(4)} s] ${s.id}: ${m}\n`),
      };
      try {
        const result = await scenario(ctx);
        outcomes.push({ id: s.id, status: 'ok', seconds: since() - s0, result });
      } catch (err) {
        // Ctrl-C stopped the measured child: stop the whole run, as the user asked.
        if (/^interrupted\b/.test((err as Error).message ?? '')) onSignal('SIGINT');
        const msg = (err as Error).stack ?? String(err);
        process.stderr.write(`bench: ${s.id} FAILED: ${msg}\n`);
        outcomes.push({ id: s.id, status: 'failed', seconds: since() - s0, error: msg });
      }
      process.stderr.write(`bench: ${s.id} took ${(since() - s0).toFixed(0)} s\n`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  await new Promise((r) => setImmediate(r)); // an interrupted run writes no report
  const argv = process.argv.slice(2);
  const report: Report = {
    startedAt,
    command: `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
    totalSeconds: since(),
    quick: opts.quick,
    runs: opts.runs,
    checkRuns: opts.checkRuns,
    machine: machineFacts(),
    // In the order of SCENARIOS, whatever order they ran in.
    scenarios: SCENARIOS.map((s) => outcomes.find((o) => o.id === s.id)).filter((o): o is ScenarioOutcome => !!o),
  };
  const md = renderMarkdown(report);
  process.stdout.write(md);
  const dir = path.join(ROOT, 'bench/results');
  fs.mkdirSync(dir, { recursive: true });
  const base = path.join(dir, `${stamp()}${opts.quick ? '-quick' : ''}${opts.only ? '-partial' : ''}`);
  fs.writeFileSync(`${base}.md`, md);
  fs.writeFileSync(`${base}.json`, JSON.stringify(report, null, 1) + '\n');
  fs.writeFileSync(`${base}.svg`, renderSvg(report));
  for (const o of report.scenarios) {
    const chart = o.result && renderSeriesSvg(report, o.result);
    if (chart) fs.writeFileSync(`${base}-${o.id}.svg`, chart);
  }
  // latest.md is the latest complete run at the default sizes: quick and partial runs keep their own files.
  if (!opts.quick && !opts.only) fs.copyFileSync(`${base}.md`, path.join(dir, 'latest.md'));
  const failed = outcomes.filter((o) => o.status === 'failed').map((o) => o.id);
  process.stderr.write(`bench: wrote ${path.relative(ROOT, base)}.{md,json,svg}${!opts.quick && !opts.only ? ' and bench/results/latest.md' : ''}\n`);
  process.stderr.write(`bench: total ${since().toFixed(0)} s (${(since() / 60).toFixed(1)} min)${failed.length ? `; failed: ${failed.join(', ')}` : ''}\n`);
  if (failed.length) process.exitCode = 1;
}

void main().catch((e) => { process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`); process.exitCode = 1; });
