// Scenario 4, the sidecar: `halfopen serve` against HAProxy doing its own TCP
// checks of the same backends (check inter 1s), for a fixed time each.
// Per tool: CPU share of one core, RSS, checks actually performed per second,
// and detection latency when one backend stops answering (its SYNs dropped).
// The fleet's firewall counts, per phase (one tool at a time), the SYNs that
// reach backend ports (checks performed) and the handshake-completing ACKs
// (connections established). HAProxy 2.6's plain TCP checks on Linux delay
// that ACK and close with RST, so they establish none either.
import { spawn, ChildProcess, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Fleet } from '../src/fleet/fleet';
import { BenchContext, ScenarioResult, Measurement, MAIN, cpuTicks, memory, sleep, waitFor, withFleet, have } from './lib';

const INTER_MS = 1000, TIMEOUT_MS = 500, FASTINTER_MS = 250, RISE = 2, FALL = 3;

function backends(n: number): Array<{ name: string; ip: string; port: number }> {
  // 198.18.0.0/16 × ports 80, 81: up to 131,072 backends, all open.
  return Array.from({ length: n }, (_, i) => {
    const a = i % 65536, port = 80 + Math.floor(i / 65536);
    return { name: `b${i}`, ip: `198.18.${a >> 8}.${a & 255}`, port };
  });
}

function nsFetch(fleet: Fleet, url: string): string {
  return fleet.exec('prober', process.execPath, ['-e', `fetch(${JSON.stringify(url)}).then(r => r.text()).then(t => process.stdout.write(t))`]);
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

interface Counters { syns: number; acks: number }

/** SYNs (checks) and handshake-completing ACKs (established connections) reaching backend ports. */
function installCounters(fleet: Fleet): () => Counters {
  execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', '-f', '-'], {
    input: 'table inet bench_count {\n chain input {\n  type filter hook input priority -20;\n' +
      '  tcp dport { 80, 81 } tcp flags & (syn | ack | rst | fin) == syn counter\n' +
      '  tcp dport { 80, 81 } tcp flags & (syn | ack | rst | fin) == ack counter\n }\n}\n',
  });
  return () => {
    const out = execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', 'list', 'table', 'inet', 'bench_count'], { encoding: 'utf8' });
    const [syns, acks] = [...out.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
    return { syns, acks };
  };
}

/** Drops all TCP to ip:80 from now on; ms until isDown() holds (NaN if not within 15 s). */
async function detection(fleet: Fleet, ip: string, isDown: () => boolean): Promise<number> {
  const t0 = Date.now();
  fleet.block('bench_silent', ip, 80, 'drop');
  try {
    return (await waitFor(isDown, 15_000, 10)) ? Date.now() - t0 : NaN;
  } finally {
    fleet.unblock('bench_silent');
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(t);
}

/** Samples CPU and memory of pid over `seconds`; also returns a counter's delta. */
async function sample(pid: number, seconds: number, counter: () => number): Promise<{ cpuPct: number; rssMb: number; hwmMb: number; perSec: number }> {
  const t0 = cpuTicks(pid), c0 = counter();
  let hwm = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) { await sleep(1000); hwm = Math.max(hwm, memory(pid).rssMb); }
  const t1 = cpuTicks(pid), c1 = counter();
  return { cpuPct: (t1 - t0) / seconds, rssMb: memory(pid).rssMb, hwmMb: hwm, perSec: (c1 - c0) / seconds };
}

async function runHalfopen(ctx: BenchContext, fleet: Fleet, count: () => Counters, n: number, inter: number, seconds: number, detect: boolean): Promise<Measurement> {
  const bs = backends(n);
  const cfg = path.join(ctx.tmp, `serve-${n}.yaml`);
  fs.writeFileSync(cfg, [
    `defaults: { interval: ${inter}ms, timeout: ${TIMEOUT_MS}ms, fastinter: ${FASTINTER_MS}ms, rise: ${RISE}, fall: ${FALL} }`,
    'listen: { http: "127.0.0.1:9400" }',
    'backends:',
    ...bs.map((b) => `  - { name: ${b.name}, host: ${b.ip}, port: ${b.port} }`),
  ].join('\n') + '\n');
  const child = spawn('ip', ['netns', 'exec', fleet.prober, process.execPath, MAIN, 'serve', '--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => { err += d; });
  try {
    if (!(await waitFor(() => /checking \d+ backends/.test(err) || child.exitCode !== null, 30_000))) throw new Error(`serve did not start: ${err}`);
    if (child.exitCode !== null) throw new Error(`serve exited: ${err}`);
    const c0 = count();
    await sleep(Math.min(inter, 5000) + 2000); // every backend checked at least once
    const s = await sample(child.pid!, seconds, () => count().syns);
    const m = nsFetch(fleet, 'http://127.0.0.1:9400/metrics');
    const out: Measurement = {
      cpuPct: s.cpuPct, rssMb: s.rssMb, peakRssMb: s.hwmMb, checksPerSec: s.perSec,
      lagMs: metric(m, 'halfopen_schedule_lag_seconds') * 1000,
      up: metric(m, 'halfopen_backends\\{state="up"\\}'),
      connections: count().acks - c0.acks,
    };
    if (detect) {
      const victim = bs[Math.floor(n / 2)];
      out.detectMs = await detection(fleet, victim.ip, () => JSON.parse(nsFetch(fleet, `http://127.0.0.1:9400/backends/${victim.name}`)).state === 'down');
    }
    return out;
  } finally {
    await stopChild(child);
  }
}

async function runHaproxy(ctx: BenchContext, fleet: Fleet, count: () => Counters, n: number, seconds: number): Promise<Measurement> {
  const bs = backends(n);
  const dir = path.join(ctx.tmp, `haproxy-${n}`);
  fs.mkdirSync(dir, { recursive: true });
  const sock = path.join(dir, 'stats.sock');
  fs.writeFileSync(path.join(dir, 'haproxy.cfg'), [
    'global', `  stats socket ${sock} mode 600 level admin`, '  spread-checks 5', '  maxconn 1000', // HAProxy reserves ~2 fds per maxconn plus one per server; the fd limit here is 20,000
    'defaults', '  mode tcp', '  timeout connect 500ms', '  timeout client 5s', '  timeout server 5s', `  timeout check ${TIMEOUT_MS}ms`,
    `  default-server check inter ${INTER_MS}ms fastinter ${FASTINTER_MS}ms rise ${RISE} fall ${FALL}`,
    'backend be',
    ...bs.map((b) => `  server ${b.name} ${b.ip}:${b.port}`),
  ].join('\n') + '\n');
  const child = spawn('ip', ['netns', 'exec', fleet.prober, 'haproxy', '-db', '-f', path.join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => { err += d; });
  const admin = (cmd: string) => fleet.exec('prober', process.execPath, ['-e',
    `const s = require('net').connect(${JSON.stringify(sock)}, () => s.write(${JSON.stringify(cmd + '\n')})); let b = ''; s.on('data', d => b += d); s.on('close', () => process.stdout.write(b)); s.on('error', () => {});`]);
  try {
    if (!(await waitFor(() => fs.existsSync(sock) || child.exitCode !== null, 30_000)) || child.exitCode !== null) throw new Error(`haproxy did not start: ${err}`);
    await sleep(INTER_MS + 2000);
    const c0 = count();
    const s = await sample(child.pid!, seconds, () => count().syns);
    const out: Measurement = { cpuPct: s.cpuPct, rssMb: s.rssMb, peakRssMb: s.hwmMb, checksPerSec: s.perSec, connections: count().acks - c0.acks };
    const victim = bs[Math.floor(n / 2)];
    const opState = () => admin('show servers state be').split('\n').find((l) => l.split(' ')[3] === victim.name)?.split(' ')[5];
    out.detectMs = await detection(fleet, victim.ip, () => opState() === '0');
    return out;
  } finally {
    await stopChild(child);
  }
}

export async function serveScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const seconds = ctx.quick ? 10 : 60;
  const sizes = ctx.quick ? [1000] : [1000, 10_000];
  const big = ctx.quick ? 0 : 100_000;
  const rows: ScenarioResult['rows'] = [];
  await withFleet({ tag: 'serve', v4: '198.18.0.0/16', open: [80, 81] }, async (fleet) => {
    const count = installCounters(fleet);
    for (const n of sizes) {
      ctx.log(`  serve: halfopen, ${n} backends at ${INTER_MS} ms, ${seconds} s`);
      rows.push({ tool: `halfopen serve (${n})`, settings: `interval 1s, timeout ${TIMEOUT_MS}ms, fall ${FALL}, fastinter ${FASTINTER_MS}ms`, runs: [await runHalfopen(ctx, fleet, count, n, INTER_MS, seconds, true)] });
      if (have('haproxy')) {
        ctx.log(`  serve: HAProxy, ${n} backends at inter ${INTER_MS} ms, ${seconds} s`);
        rows.push({ tool: `HAProxy 2.6 checks (${n})`, settings: `check inter 1s timeout check ${TIMEOUT_MS}ms fall ${FALL} fastinter ${FASTINTER_MS}ms`, runs: [await runHaproxy(ctx, fleet, count, n, seconds)] });
      }
    }
    if (big) {
      ctx.log(`  serve: halfopen, ${big} backends at 10 s, ${seconds} s`);
      rows.push({ tool: `halfopen serve (${big})`, settings: 'interval 10s', runs: [await runHalfopen(ctx, fleet, count, big, 10_000, seconds, false)] });
    }
  });
  return {
    id: 'serve',
    title: 'Sidecar: continuous health checks',
    notes: [
      `${seconds} s of steady state per tool after a warm-up, one run each. CPU is the share of one core (user + sys of the process).`,
      'checks/s: SYNs reaching backend ports, counted in the fleet\'s firewall while only that tool runs. Connections: handshake-completing ACKs counted the same way (halfopen must make none; HAProxy 2.6\'s plain TCP checks on Linux delay that ACK and reset, so they make none either).',
      `Detection: one backend's SYNs are dropped from then on; time until the tool marks it down (halfopen: /backends; HAProxy: srv_op_state). Expected bound: first check within one interval, then ${FALL} failures of ${TIMEOUT_MS} ms each.`,
      'The fleet\'s kernel shares the same 2 cores; its work for the replies is partly charged to whichever process sent the packet.',
    ],
    columns: [
      { key: 'cpuPct', label: 'CPU % of a core', digits: 1, ratio: 'lower-is-better' },
      { key: 'rssMb', label: 'RSS MB', digits: 0, ratio: 'lower-is-better' },
      { key: 'checksPerSec', label: 'checks/s', digits: 0 },
      { key: 'detectMs', label: 'detection ms', digits: 0 },
      { key: 'connections', label: 'connections established with backends', digits: 0 },
      { key: 'lagMs', label: 'schedule lag ms', digits: 0 },
    ],
    baseline: 'halfopen',
    rows,
  };
}
