// What HAProxy's agent-check costs serve: one TCP connection per server per
// agent-inter (9,000 servers at 1 s: 9,000 connections a second). A client in
// the prober namespace opens agent connections at a steady rate, each sending
// a backend's name and reading the one-line answer, as HAProxy does; serve's
// CPU (user + system, from /proc) over the loaded window, minus its CPU over
// an equally long idle window just before, divided by the connections
// answered, is its cost per connection.
//
// HALFOPEN_BENCH_REF=DIR adds a row for the build in DIR (its
// dist/src/cli/main.js): the same scenario against an earlier responder.
//
// A scenario of `npm run bench` (--only agent-cost).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Fleet } from '../src/fleet/fleet';
import { BenchContext, Column, MAIN, Scenario, ScenarioResult, cpuTicks, sleep, waitFor } from './lib';

const AGENT = 9481;

// Paced agent clients: `rate` connections a second for `secs`, at most 256 at once.
const CLIENT = String.raw`const net = require('net');
const [port, rate, secs, n] = process.argv.slice(1).map(Number);
let sent = 0, done = 0, bad = 0, open = 0;
const t0 = Date.now();
const one = () => {
  open++;
  const key = 'b' + (sent++ % n) + '\n';
  const s = net.connect(port, '127.0.0.1');
  let got = '';
  s.on('connect', () => s.write(key));
  s.on('data', (d) => { got += d; });
  s.on('error', () => {});
  s.on('close', () => { open--; if (/^up/.test(got)) done++; else bad++; });
};
const timer = setInterval(() => {
  const el = (Date.now() - t0) / 1000;
  if (el >= secs) {
    clearInterval(timer);
    const wait = setInterval(() => { if (!open) { clearInterval(wait); process.stdout.write(JSON.stringify({ done, bad, wallS: (Date.now() - t0) / 1000 })); } }, 5);
    return;
  }
  const due = Math.floor(el * rate);
  while (sent < due && open < 256) one();
}, 2);
`;

const COLUMNS: Column[] = [
  { key: 'cpuMsPer1k', label: 'serve CPU s per 1,000 connections', digits: 3, ratio: 'lower-is-better' },
  { key: 'usPerConn', label: 'µs per connection', digits: 1, ratio: 'lower-is-better' },
  { key: 'rate', label: 'connections/s answered', digits: 0 },
  { key: 'idlePct', label: 'serve idle, % of a core', digits: 1 },
  { key: 'bad', label: 'wrong or missing answers', digits: 0 },
];

async function measure(ctx: BenchContext, fleet: Fleet, main: string, dir: string, backends: number, rate: number, secs: number) {
  const file = path.join(dir, 'serve.yaml');
  fs.writeFileSync(file, `defaults: { interval: 1s, timeout: 500ms }
listen: { agent: "127.0.0.1:${AGENT}" }
probe: { interface: ${fleet.proberIf} }
backends:
${Array.from({ length: backends }, (_, i) => `  - { name: b${i}, host: 198.18.${i >> 8}.${i & 255}, port: 80 }`).join('\n')}
`);
  const child = spawn('ip', ['netns', 'exec', fleet.prober, process.execPath, main, 'serve', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    await waitFor(() => /checking \d+ backends/.test(err) || child.exitCode !== null, 20_000);
    if (!/checking \d+ backends/.test(err)) throw new Error(`serve did not start: ${err.trim().slice(0, 300)}`);
    await sleep(3000); // first checks done, JIT warm
    const pid = child.pid!;
    const i0 = cpuTicks(pid);
    await sleep(secs * 1000);
    const idle = (cpuTicks(pid) - i0) / 100;
    const c0 = cpuTicks(pid);
    const out = await new Promise<string>((resolve, reject) => {
      const c = spawn('ip', ['netns', 'exec', fleet.prober, process.execPath, '-e', CLIENT, String(AGENT), String(rate), String(secs), String(backends)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let o = '', e = '';
      c.stdout.on('data', (d) => { o += d; });
      c.stderr.on('data', (d) => { e += d; });
      c.on('exit', (code) => (code === 0 ? resolve(o) : reject(new Error(`agent client: exit ${code}: ${e.slice(0, 300)}`))));
    });
    const loaded = (cpuTicks(pid) - c0) / 100;
    const r = JSON.parse(out) as { done: number; bad: number; wallS: number };
    const extra = Math.max(0, loaded - idle * (r.wallS / secs));
    ctx.log(`${main}: ${r.done} answers in ${r.wallS.toFixed(1)} s, serve ${loaded.toFixed(2)} CPU-s loaded vs ${idle.toFixed(2)} idle`);
    return { cpuMsPer1k: (extra / r.done) * 1000, usPerConn: (extra / r.done) * 1e6, rate: r.done / r.wallS, idlePct: (idle / secs) * 100, bad: r.bad };
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
}

export const agentCostScenario: Scenario = async (ctx: BenchContext): Promise<ScenarioResult> => {
  if (process.getuid?.() !== 0) throw new Error('needs root (namespaces, XDP)');
  const backends = ctx.quick ? 200 : 1000, rate = ctx.quick ? 1000 : 3000, secs = ctx.quick ? 5 : 10;
  const builds: Array<[string, string]> = [['serve (this build)', MAIN]];
  const ref = process.env.HALFOPEN_BENCH_REF;
  if (ref) builds.push([`serve (${ref})`, path.join(ref, 'dist/src/cli/main.js')]);
  const fleet = await Fleet.create({ tag: 'agent', v4: '198.18.0.0/22', open: [80] });
  const dir = fs.mkdtempSync(path.join(ctx.tmp, 'agent-'));
  const rows: ScenarioResult['rows'] = [];
  try {
    for (let run = 0; run < Math.max(1, ctx.runs); run++) {
      // Alternate the builds so drifting machine load hits both alike.
      for (const [tool, main] of run % 2 ? [...builds].reverse() : builds) {
        const m = await measure(ctx, fleet, main, dir, backends, rate, secs);
        let r = rows.find((x) => x.tool === tool);
        if (!r) rows.push(r = { tool, settings: `${backends} backends at 1 s; ${rate} agent connections/s for ${secs} s`, runs: [] });
        r.runs.push(m);
      }
    }
  } finally {
    fleet.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return {
    id: 'agent-cost',
    title: 'agent-check responder: serve CPU per connection',
    notes: [
      `A Node client in the prober namespace opens ${rate} agent connections a second (at most 256 at once) to serve's listen.agent, each sending "bN\\n" and reading the answer, as HAProxy's agent-check does.`,
      `Cost = (serve CPU over the loaded window − serve CPU over an idle window of the same length just before) ÷ answers. The client runs on the same 2 cores and is not counted.`,
      'The machine has 2 cores shared with other work: see the load printed with the run.',
    ],
    columns: COLUMNS,
    baseline: 'serve (this build)',
    rows,
  };
};
