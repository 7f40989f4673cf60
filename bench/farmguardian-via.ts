// farmguardian through the daemon: one farmguardian round (Perl backticks
// through /bin/sh under alarm, `MARK=… LD_PRELOAD=…` in front, HOST and PORT
// substituted, exit 0 = up; src/fleet/farmguardian-loop.ts) over 200
// backends of which 10 are silent, with -t 1:
//   - direct: check_tcp_half_open HOST PORT, a live check per backend;
//   - --via: check_tcp_half_open --via SOCKET HOST PORT against a serve that
//     checks the 200 backends;
//   - --via, learning: the same against a serve with no backends and
//     plugin.learn (round 1 learns every backend, round 2 answers from state).
// Also serve's CPU during the --via rounds.
//
// A scenario of `npm run bench` (--only farmguardian-via).
import fs from 'node:fs';
import path from 'node:path';
import { Fleet } from '../src/fleet/fleet';
import { farmguardianLoop, LoopResult } from '../src/fleet/farmguardian-loop';
import { BenchContext, Column, spawnServe, ROOT, Scenario, ScenarioResult, cpuTicks, have, median, nsFetch, percentile, sleep, waitFor } from './lib';

const NATIVE = path.join(ROOT, 'native/plugin/build/check_tcp_half_open');
const TIMEOUT_S = 1;
const HTTP = 9480;
const PRELOAD = ['/lib/x86_64-linux-gnu/libm.so.6', '/usr/lib/x86_64-linux-gnu/libm.so.6'].find((f) => fs.existsSync(f)) ?? '';

interface Target { host: string; port: number; truth: 'up' | 'down' }

function targets(quick: boolean): Target[] {
  const open = quick ? 38 : 190, silent = quick ? 2 : 10;
  return [
    ...Array.from({ length: open }, (_, i) => ({ host: `198.18.0.${i + 1}`, port: 80, truth: 'up' as const })),
    ...Array.from({ length: silent }, (_, i) => ({ host: `198.18.0.${200 + i}`, port: 80, truth: 'down' as const })),
  ];
}

const COLUMNS: Column[] = [
  { key: 'roundS', label: 'round s', digits: 2, ratio: 'lower-is-better' },
  { key: 'openMs', label: 'open backend, ms (median)', digits: 1, ratio: 'lower-is-better' },
  { key: 'silentMs', label: 'silent backend, ms (median)', digits: 1, ratio: 'lower-is-better' },
  { key: 'p99Ms', label: 'check p99 ms', digits: 1 },
  { key: 'serveCpuS', label: 'serve CPU s in the round', digits: 2 },
  { key: 'correct', label: 'verdicts right', digits: 0 },
];

interface Serve { pid: number; stop(): Promise<void> }

async function startServe(fleet: Fleet, dir: string, config: string): Promise<Serve> {
  const file = path.join(dir, 'serve.yaml');
  fs.writeFileSync(file, config);
  const child = spawnServe(fleet, file);
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitFor(() => /checking \d+ backends/.test(err) || child.exitCode !== null, 20_000);
  if (!/checking \d+ backends/.test(err)) throw new Error(`serve did not start: ${err.trim().slice(0, 300)}`);
  return {
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

function measure(r: LoopResult, list: Target[], round: number, serveCpuS: number) {
  const checks = r.checks.filter((c) => c.round === round);
  const open = checks.filter((c) => list[c.i].truth === 'up').map((c) => c.ms);
  const silent = checks.filter((c) => list[c.i].truth === 'down').map((c) => c.ms);
  return {
    roundS: r.roundS[round - 1], openMs: median(open), silentMs: median(silent), p99Ms: percentile(checks.map((c) => c.ms), 99),
    serveCpuS, correct: checks.filter((c) => (c.code === 0 ? 'up' : 'down') === list[c.i].truth).length,
  };
}

export const farmguardianViaScenario: Scenario = async (ctx: BenchContext): Promise<ScenarioResult> => {
  if (process.getuid?.() !== 0) throw new Error('needs root (namespaces, raw sockets, XDP)');
  if (!have('perl')) throw new Error('needs perl');
  if (!fs.existsSync(NATIVE)) throw new Error(`${NATIVE} is not built (bash scripts/build.sh)`);
  const list = targets(ctx.quick);
  const fleet = await Fleet.create({ tag: 'fgvia', v4: '198.18.0.0/24', open: [80], drop: ['198.18.0.200/29', '198.18.0.208/31'] });
  const dir = fs.mkdtempSync(path.join(ctx.tmp, 'fgvia-'));
  const sock = path.join(dir, 'plugin.sock');
  if (/HOST|PORT/.test(sock)) throw new Error(`${sock}: farmguardian would substitute into it`);
  const prefix = `MARK=0x200 LD_PRELOAD=${PRELOAD}`;
  const defaults = 'defaults: { interval: 1s, timeout: 500ms, rise: 2, fall: 2 }';
  const rows: ScenarioResult['rows'] = [];
  const row = (tool: string, settings: string, m: ReturnType<typeof measure>) => {
    rows.push({ tool, settings, runs: [m] });
    ctx.log(`${tool}: round ${m.roundS.toFixed(2)} s, open ${m.openMs.toFixed(1)} ms, silent ${m.silentMs.toFixed(1)} ms, ${m.correct}/${list.length} right`);
  };
  const loop = (template: string, rounds = 1) => farmguardianLoop(fleet, { template: `${prefix} ${template}`, backends: list, rounds, alarmS: 2 });
  const ticks = (pid: number) => cpuTicks(pid) / 100;
  try {
    ctx.log(`direct: ${list.length} live checks`);
    row('check_tcp_half_open (direct)', `check_tcp_half_open -t ${TIMEOUT_S} HOST PORT`, measure(await loop(`${NATIVE} -t ${TIMEOUT_S} HOST PORT`), list, 1, 0));

    let serve = await startServe(fleet, dir, `${defaults}
listen: { http: "127.0.0.1:${HTTP}", plugin: ${sock} }
probe: { interface: ${fleet.proberIf} }
backends:
${list.map((t) => `  - { host: ${t.host}, port: ${t.port} }`).join('\n')}
`);
    try {
      await waitFor(() => (JSON.parse(nsFetch(fleet, `http://127.0.0.1:${HTTP}/backends`)) as Array<{ state: string }>).filter((b) => b.state === 'up').length === list.filter((t) => t.truth === 'up').length, 20_000);
      await sleep(1500); // the silent ones down after fall
      const c0 = ticks(serve.pid);
      const r = await loop(`${NATIVE} --via ${sock} -t ${TIMEOUT_S} HOST PORT`, 3);
      const cpu = (ticks(serve.pid) - c0) / 3;
      const best = [1, 2, 3].reduce((a, b) => (r.roundS[b - 1] < r.roundS[a - 1] ? b : a));
      row('check_tcp_half_open --via (configured)', `--via ${path.basename(sock)} -t ${TIMEOUT_S} HOST PORT, serve checks the ${list.length} backends (best of 3 rounds)`, measure(r, list, best, cpu));
    } finally {
      await serve.stop();
    }

    serve = await startServe(fleet, dir, `${defaults}
listen: { http: "127.0.0.1:${HTTP}", plugin: ${sock} }
probe: { interface: ${fleet.proberIf} }
plugin: { learn: true, allow: [198.18.0.0/24] }
backends: []
`);
    try {
      const c0 = ticks(serve.pid);
      const r1 = await loop(`${NATIVE} --via ${sock} -t ${TIMEOUT_S} HOST PORT`);
      const c1 = ticks(serve.pid);
      row('--via, learning: round 1', 'serve starts with no backends, plugin.learn: each backend learned and answered after its first check', measure(r1, list, 1, c1 - c0));
      const r2 = await loop(`${NATIVE} --via ${sock} -t ${TIMEOUT_S} HOST PORT`);
      row('--via, learned: round 2', 'the learned backends answered from state', measure(r2, list, 1, ticks(serve.pid) - c1));
    } finally {
      await serve.stop();
    }
  } finally {
    fleet.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const silent = list.filter((t) => t.truth === 'down').length;
  return {
    id: 'farmguardian-via',
    title: `farmguardian round through the daemon: ${list.length} backends, ${silent} silent, -t ${TIMEOUT_S}`,
    notes: [
      `${list.length} backends (${list.length - silent} open, ${silent} dropped by nftables), checked one after another from Perl as farmguardian does (backticks through /bin/sh, alarm 2, ${prefix} in front, HOST/PORT substituted, exit 0 = up).`,
      'Per-check times are whole-process times as the Perl loop sees them (fork, /bin/sh, the plugin, its exit), inside the prober namespace.',
      `serve: interval 1 s, timeout 500 ms, rise 2, fall 2. "serve CPU" is serve's user+system time during the round (includes its own checking of the ${list.length} backends).`,
      'The machine has 2 cores shared with other work: see the load printed with the run.',
    ],
    columns: COLUMNS,
    baseline: 'check_tcp_half_open (direct)',
    rows,
  };
};
