// /probe throughput: probes per second through serve's /probe at 100
// concurrent scrapers, and CPU per probe, against blackbox_exporter's
// tcp_connect (Debian's prometheus-blackbox-exporter), same targets, same
// run. Both exporters run in the fleet's prober namespace on loopback with
// their own config; the load generator (one Node process, 100 keep-alive
// connections, as Prometheus keeps them) runs there too and checks every
// answer's probe_success against the fleet. Rounds alternate between the
// two exporters so drift hits both alike.
//
// A scenario of `npm run bench` (--only probe).
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../src/fleet/fleet';
import { BenchContext, Column, spawnServe, Scenario, ScenarioResult, cpuTicks, have, machineTicks, median, memory, nsFetch, sleep, toolVersion, waitFor } from './lib';
import { stopChild } from '../src/fleet/stop-child';

const HALFOPEN_PORT = 9491;
const BLACKBOX_PORT = 9492;
const SCRAPERS = 100;
/** 90 open targets, 10 closed (RST): probe_success 1 and 0. */
const TARGETS = [...Array.from({ length: 90 }, (_, i) => [`198.18.0.${i + 1}:80`, '1']), ...Array.from({ length: 10 }, (_, i) => [`198.18.0.${i + 101}:81`, '0'])];

const COLUMNS: Column[] = [
  { key: 'pps', label: 'probes/s', digits: 0, ratio: 'higher-is-better' },
  { key: 'cpuUs', label: 'exporter CPU µs/probe', digits: 1, ratio: 'lower-is-better' },
  { key: 'machineUs', label: 'machine CPU µs/probe', digits: 1, ratio: 'lower-is-better' },
  { key: 'p50', label: 'p50 ms', digits: 2 },
  { key: 'p99', label: 'p99 ms', digits: 2 },
  { key: 'correct', label: 'correct %', digits: 2 },
  { key: 'accepts', label: 'connections the fleet accepted', digits: 0 },
  { key: 'rssMb', label: 'exporter RSS MB', digits: 0 },
];

/** The load generator, inside the prober namespace: SCRAPERS loops for `seconds` against `base`. */
const loadScript = (base: string, module: string, seconds: number) => `(async () => {
  const http = require('http');
  const agent = new http.Agent({ keepAlive: true, maxSockets: ${SCRAPERS} });
  const targets = ${JSON.stringify(TARGETS)};
  const end = Date.now() + ${seconds * 1000};
  let n = 0, ok = 0, bad = 0, errors = 0, i = 0;
  const lat = [];
  const one = (t) => new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const req = http.get({ host: '127.0.0.1', port: ${new URL(base).port}, agent, path: '/probe?module=${module}&target=' + t[0], headers: { 'X-Prometheus-Scrape-Timeout-Seconds': '5' } }, (res) => {
      let b = ''; res.setEncoding('utf8'); res.on('data', (d) => b += d);
      res.on('end', () => {
        lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
        const m = /^probe_success (\\d)/m.exec(b);
        if (res.statusCode === 200 && m && m[1] === t[1]) ok++; else bad++;
        n++; resolve();
      });
    });
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.on('error', () => { errors++; n++; resolve(); });
  });
  const t0 = Date.now();
  await Promise.all(Array.from({ length: ${SCRAPERS} }, async () => { while (Date.now() < end && n < 5e6) await one(targets[i++ % targets.length]); }));
  const wall = (Date.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ n, ok, bad, errors, wall, p50: lat[lat.length >> 1], p99: lat[Math.floor(lat.length * 0.99)] }));
  agent.destroy();
})()`;

function runIn(fleet: Fleet, script: string, timeoutMs: number): Promise<string> {
  const child = spawn('ip', ['netns', 'exec', fleet.prober, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => { clearTimeout(t); if (code === 0) resolve(out); else reject(new Error(`load generator exited ${code}: ${err.slice(0, 300)}`)); });
  });
}


export const probeScenario: Scenario = async (ctx: BenchContext): Promise<ScenarioResult> => {
  const seconds = ctx.quick ? 3 : 8;
  const rounds = Math.max(1, ctx.runs);
  const dir = fs.mkdtempSync(path.join(ctx.tmp, 'probe-'));
  const fleet = await Fleet.create({ tag: 'bprobe', v4: '198.18.0.0/24', open: [80] });
  let serve: ChildProcess | undefined, blackbox: ChildProcess | undefined;
  const rows: ScenarioResult['rows'] = [
    { tool: 'halfopen serve /probe', settings: `module tcp_half_open, exporter-only config, ${SCRAPERS} scrapers`, runs: [] },
    { tool: 'blackbox_exporter', settings: `module tcp_connect (prober tcp), ${SCRAPERS} scrapers`, runs: [] },
  ];
  const notes: string[] = [];
  try {
    fs.writeFileSync(path.join(dir, 'serve.yaml'), `listen: { http: "127.0.0.1:${HALFOPEN_PORT}" }
exporter:
  allow: [198.18.0.0/24]
  max_concurrent: ${SCRAPERS * 2}
  max_per_second: 1000000
`);
    fs.writeFileSync(path.join(dir, 'blackbox.yml'), 'modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 5s\n');
    let serveErr = '';
    serve = spawnServe(fleet, path.join(dir, 'serve.yaml'));
    serve.stderr!.on('data', (d) => { serveErr += d; });
    if (!(await waitFor(() => /checking \d+ backends/.test(serveErr) || serve!.exitCode !== null, 15_000, 100))) throw new Error(`serve did not start: ${serveErr}`);
    if (serve.exitCode !== null) throw new Error(`serve exited: ${serveErr}`);
    const haveBlackbox = have('prometheus-blackbox-exporter');
    if (haveBlackbox) {
      blackbox = spawn('ip', ['netns', 'exec', fleet.prober, 'prometheus-blackbox-exporter', `--config.file=${path.join(dir, 'blackbox.yml')}`,
        `--web.listen-address=127.0.0.1:${BLACKBOX_PORT}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'ignore'] });
      await waitFor(() => { try { return nsFetch(fleet, `http://127.0.0.1:${BLACKBOX_PORT}/-/healthy`).length > 0; } catch { return false; } }, 15_000, 200);
    } else notes.push('prometheus-blackbox-exporter is not installed (apt-get install prometheus-blackbox-exporter): its row is empty.');
    const tools: Array<[number, ChildProcess | undefined, string, string]> = [[0, serve, `http://127.0.0.1:${HALFOPEN_PORT}`, 'tcp_half_open']];
    if (haveBlackbox) tools.push([1, blackbox, `http://127.0.0.1:${BLACKBOX_PORT}`, 'tcp_connect']);
    const loads: number[] = [];
    for (let r = -1; r < rounds; r++) {
      for (const [row, proc, base, module] of tools) {
        const accepts0 = fleet.acceptedConnections().length;
        const c0 = cpuTicks(proc!.pid!), m0 = machineTicks();
        const res = JSON.parse(await runIn(fleet, loadScript(base, module, r < 0 ? 1 : seconds), (seconds + 30) * 1000));
        const c1 = cpuTicks(proc!.pid!), m1 = machineTicks();
        await sleep(300); // the listener reports its accepts on stdout
        if (r < 0) continue; // warm-up: JIT, sockets, caches
        loads.push(os.loadavg()[0]);
        rows[row].runs.push({
          pps: res.n / res.wall,
          cpuUs: ((c1 - c0) * 10_000) / Math.max(1, res.n),
          machineUs: ((m1 - m0) * 10_000) / Math.max(1, res.n),
          p50: res.p50, p99: res.p99,
          correct: (100 * res.ok) / Math.max(1, res.n),
          accepts: fleet.acceptedConnections().length - accepts0,
          rssMb: memory(proc!.pid!).rssMb,
        });
        ctx.log(`probe: ${rows[row].tool}: ${res.n} probes in ${res.wall.toFixed(1)} s, ${res.bad} wrong, ${res.errors} errors`);
      }
    }
    notes.push(
      `${SCRAPERS} concurrent scrapers (keep-alive, one Node process in the prober namespace) for ${seconds} s per round, ${rounds} rounds after a warm-up, alternating; ` +
      `targets: 90 open, 10 closed (RST); every answer's probe_success checked against the fleet.`,
      `exporter CPU: the exporter process's user+sys (serve: every thread, sender included); machine CPU: the whole machine (load generator, fleet, both kernels) per probe. ` +
      `Load average (1 min) during the rounds: ${loads.map((l) => l.toFixed(2)).join(', ')} on ${os.availableParallelism()} cores: the machine is shared, so take the ratios over the absolute figures.`,
      `${toolVersion('prometheus-blackbox-exporter --version')}; its tcp_connect completes a handshake with every target (the fleet's accept count), /probe never does.`,
    );
  } finally {
    await stopChild(serve);
    await stopChild(blackbox);
    fleet.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  void median;
  return { id: 'probe', title: `/probe: ${SCRAPERS} concurrent scrapers, serve vs blackbox_exporter tcp_connect`, notes, columns: COLUMNS, baseline: 'halfopen serve /probe', rows };
};
