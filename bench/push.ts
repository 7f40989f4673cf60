// Scenario `push`: how a balancer learns serve's verdicts, side by side on one
// fleet of 9,000 open backends at a 1 s interval (quick: 2,000):
//   A. HAProxy 2.6 doing its own checks (check inter 1s);
//   B. serve + HAProxy following it by agent-check (agent-inter 1s);
//   C. serve + HAProxy driven by push through the Runtime API (no check).
// Per setup: CPU of each process (% of one core) and their total; then the
// propagation of a change: 100 backends (in their own HAProxy backend, so
// polling them is cheap) dropped at once and restored, timed from the nft
// rule to HAProxy's `show servers state` (fleet → HAProxy), and for serve
// also from serve's own event to HAProxy (the push or agent leg alone).
import { spawn, ChildProcess, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../src/fleet/fleet';
import { BenchContext, ScenarioResult, Measurement, spawnServe, cpuTicks, sleep, withFleet, have, percentile } from './lib';

const INTER = 1000, TIMEOUT = 500, FASTINTER = 250, RISE = 2, FALL = 3;
const VICTIMS = 100;
const AGENT = 9481, HTTP = 9480;

const addr = (i: number) => `198.18.${i >> 8}.${i & 255}`;
const isVictim = (i: number, n: number) => i % Math.floor(n / VICTIMS) === 0 && i / Math.floor(n / VICTIMS) < VICTIMS;

function command(sock: string, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    let b = '';
    const t = setTimeout(() => { s.destroy(); reject(new Error('timeout')); }, 3000);
    s.on('connect', () => s.write(cmd + '\n'));
    s.on('data', (d) => { b += d; });
    s.on('error', (e) => { clearTimeout(t); reject(e); });
    s.on('close', () => { clearTimeout(t); resolve(b); });
  });
}

async function stop(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(t);
}

type Mode = 'own' | 'agent' | 'push';

function haproxyConfig(mode: Mode, n: number, sock: string): string {
  const server = (i: number) => {
    const opts = mode === 'own' ? ` check inter ${INTER}ms fastinter ${FASTINTER}ms rise ${RISE} fall ${FALL}`
      : mode === 'agent' ? ` agent-check agent-addr 127.0.0.1 agent-port ${AGENT} agent-send "b${i}\\n" agent-inter ${INTER}ms` : '';
    return `  server b${i} ${addr(i)}:80${opts}`;
  };
  const all = Array.from({ length: n }, (_, i) => i);
  return [
    'global', `  stats socket ${sock} mode 600 level admin`, '  spread-checks 5', '  maxconn 500',
    'defaults', '  mode tcp', '  timeout connect 500ms', '  timeout client 5s', '  timeout server 5s', `  timeout check ${TIMEOUT}ms`,
    'backend be', ...all.filter((i) => !isVictim(i, n)).map(server),
    'backend victims', ...all.filter((i) => isVictim(i, n)).map(server),
  ].join('\n') + '\n';
}

function serveConfig(mode: Mode, n: number, sock: string, events: string): string {
  return [
    `defaults: { interval: ${INTER}ms, timeout: ${TIMEOUT}ms, fastinter: ${FASTINTER}ms, rise: ${RISE}, fall: ${FALL} }`,
    `listen: { http: "127.0.0.1:${HTTP}"${mode === 'agent' ? `, agent: "127.0.0.1:${AGENT}"` : ''} }`,
    `events: ${events}`,
    ...(mode === 'push' ? ['push:', '  haproxy:', `    - { socket: ${sock}, backend: be }`] : []),
    'backends:',
    ...Array.from({ length: n }, (_, i) => `  - { name: b${i}, host: ${addr(i)}, port: 80${isVictim(i, n) ? ', server: victims/b' + i : ''} }`),
  ].join('\n') + '\n';
}

/** CPU % of one core of each pid over `seconds`. */
async function cpu(pids: number[], seconds: number): Promise<number[]> {
  const t0 = pids.map(cpuTicks);
  await sleep(seconds * 1000);
  return pids.map((p, k) => (cpuTicks(p) - t0[k]) / seconds);
}

/** The victims' op state in HAProxy, polled every 20 ms until each reached `want`; ms from t0 per victim. */
async function watch(sock: string, want: 'down' | 'up', t0: number, limitMs: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  const end = t0 + limitMs;
  while (Date.now() < end && seen.size < VICTIMS) {
    const text = await command(sock, 'show servers state victims').catch(() => '');
    const now = Date.now();
    for (const l of text.split('\n')) {
      const f = l.split(' ');
      if (f.length < 15 || l.startsWith('#') || seen.has(f[3])) continue;
      if ((f[5] === '0') === (want === 'down')) seen.set(f[3], now);
    }
    await sleep(20);
  }
  return seen;
}

/** serve's event time per victim for the first change to `to` after t0. */
function eventTimes(events: string, to: 'down' | 'up', t0: number): Map<string, number> {
  const m = new Map<string, number>();
  if (!fs.existsSync(events)) return m;
  for (const line of fs.readFileSync(events, 'utf8').split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line) as { event: string; backend: string; to: string; time: string };
    const t = Date.parse(e.time);
    if (e.event === 'state' && e.to === to && t >= t0 && !m.has(e.backend)) m.set(e.backend, t);
  }
  return m;
}

async function run(ctx: BenchContext, fleet: Fleet, mode: Mode, n: number, seconds: number): Promise<Measurement> {
  const dir = fs.mkdtempSync(path.join(ctx.tmp, `push-${mode}-`));
  const sock = path.join(dir, 'stats.sock'), events = path.join(dir, 'events.ndjson');
  fs.writeFileSync(path.join(dir, 'haproxy.cfg'), haproxyConfig(mode, n, sock));
  let serve: ChildProcess | null = null, hap: ChildProcess | null = null;
  let err = '';
  try {
    if (mode !== 'own') {
      fs.writeFileSync(path.join(dir, 'serve.yaml'), serveConfig(mode, n, sock, events));
      serve = spawnServe(fleet, path.join(dir, 'serve.yaml'));
      serve.stderr!.on('data', (d) => { if (err.length < 65536) err += d; });
      const t = Date.now();
      while (!/checking \d+ backends/.test(err) && serve.exitCode === null && Date.now() - t < 30_000) await sleep(50);
      if (!/checking \d+ backends/.test(err)) throw new Error(`serve did not start: ${err}`);
    }
    hap = spawn('ip', ['netns', 'exec', fleet.prober, 'haproxy', '-db', '-f', path.join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'pipe'] });
    hap.stderr!.on('data', (d) => { if (err.length < 65536) err += d; });
    const t = Date.now();
    while (!(await command(sock, 'show info').then((s) => /Pid:/.test(s), () => false)) && Date.now() - t < 30_000) await sleep(100);
    await sleep(INTER + 3000); // every server checked, every agent answered, the first reconcile done
    const [hapCpu, serveCpu] = await cpu([hap.pid!, ...(serve ? [serve.pid!] : [])], seconds);
    const out: Measurement = { haproxyCpuPct: hapCpu, serveCpuPct: serveCpu ?? 0, totalCpuPct: hapCpu + (serveCpu ?? 0) };
    // Propagation: the victims dropped, then restored.
    const victims = Array.from({ length: n }, (_, i) => i).filter((i) => isVictim(i, n));
    const total: number[] = [], leg: number[] = [];
    let missed = 0;
    for (const want of ['down', 'up'] as const) {
      if (want === 'down') {
        execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', '-f', '-'], {
          input: `table inet bench_push {\n chain input {\n  type filter hook input priority -30;\n  ip daddr { ${victims.map(addr).join(', ')} } drop\n }\n}\n`,
        });
      } else execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', 'delete', 'table', 'inet', 'bench_push']);
      const t0 = Date.now();
      const seen = await watch(sock, want, t0, 15_000);
      missed += VICTIMS - seen.size;
      const ev = eventTimes(events, want, t0);
      for (const [name, at] of seen) {
        total.push(at - t0);
        const e = ev.get(name);
        if (e !== undefined) leg.push(at - e);
      }
      await sleep(1500);
    }
    Object.assign(out, {
      p50Ms: percentile(total, 50), p99Ms: percentile(total, 99), maxMs: Math.max(...total),
      legP50Ms: leg.length ? percentile(leg, 50) : NaN, legP99Ms: leg.length ? percentile(leg, 99) : NaN, legMaxMs: leg.length ? Math.max(...leg) : NaN,
      missed,
    });
    return out;
  } finally {
    await stop(hap);
    await stop(serve);
  }
}

export async function pushScenario(ctx: BenchContext): Promise<ScenarioResult> {
  if (!have('haproxy')) throw new Error('haproxy not installed (scripts/setup.sh installs it)');
  const n = ctx.quick ? 2000 : 9000;
  const seconds = ctx.quick ? 5 : 10;
  const load0 = os.loadavg()[0];
  const rows = await withFleet({ tag: 'pushb', v4: '198.18.0.0/16', open: [80] }, async (fleet) => {
    const out: ScenarioResult['rows'] = [];
    for (const [mode, tool, settings] of [
      ['own', 'HAProxy 2.6 own checks', `check inter ${INTER}ms fastinter ${FASTINTER}ms rise ${RISE} fall ${FALL}`],
      ['agent', 'serve + HAProxy agent-check', `agent-check agent-inter ${INTER}ms; serve interval ${INTER}ms`],
      ['push', 'serve + Runtime API push', 'servers without check; push.haproxy'],
    ] as Array<[Mode, string, string]>) {
      ctx.log(`push: ${tool}, ${n} backends`);
      out.push({ tool, settings, runs: [await run(ctx, fleet, mode, n, seconds)] });
    }
    return out;
  });
  return {
    id: 'push',
    title: `How HAProxy learns verdicts: its own checks, agent-check, or push (${n.toLocaleString('en')} backends at ${INTER / 1000} s)`,
    notes: [
      `CPU over ${seconds} s per process, % of one core, after a ${INTER + 3000} ms warm-up. Load average (1 min) at the start: ${load0.toFixed(2)} on ${os.cpus().length} cores, shared with other work.`,
      `Propagation: ${VICTIMS} backends dropped at once and restored, each timed from the nft rule to HAProxy's \`show servers state\` (polled every 20 ms): it includes detection (fall ${FALL} × fastinter ${FASTINTER} ms + timeout ${TIMEOUT} ms going down, rise ${RISE} coming up).`,
      'The "serve → HAProxy" leg times the same change from serve\'s own event (events file) to HAProxy: the agent\'s polling or the push alone.',
    ],
    columns: [
      { key: 'haproxyCpuPct', label: 'HAProxy CPU %', digits: 1, ratio: 'lower-is-better' },
      { key: 'serveCpuPct', label: 'serve CPU %', digits: 1 },
      { key: 'totalCpuPct', label: 'total CPU %', digits: 1, ratio: 'lower-is-better' },
      { key: 'p50Ms', label: 'fleet → HAProxy p50 ms', digits: 0 },
      { key: 'p99Ms', label: 'p99 ms', digits: 0 },
      { key: 'maxMs', label: 'max ms', digits: 0 },
      { key: 'legP50Ms', label: 'serve → HAProxy p50 ms', digits: 0 },
      { key: 'legP99Ms', label: 'p99 ms', digits: 0 },
      { key: 'legMaxMs', label: 'max ms', digits: 0 },
      { key: 'missed', label: 'missed', digits: 0 },
    ],
    baseline: 'serve + Runtime API push',
    rows,
  };
}
