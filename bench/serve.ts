// Scenario 4, the sidecar: `halfopen serve` against HAProxy doing its own TCP
// checks of the same backends (check inter 1s), for a fixed time each.
// Per tool: CPU share of one core, RSS, checks actually performed per second,
// and detection latency when backends stop answering (their SYNs dropped):
// 20 backends at once, so the spread over where each was in its interval shows.
// The fleet's firewall counts, per phase (one tool at a time), the SYNs that
// reach backend ports (checks performed) and the handshake-completing ACKs
// (connections established). HAProxy 2.6's plain TCP checks on Linux delay
// that ACK and close with RST, so they establish none either.
import { spawn, ChildProcess, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../src/fleet/fleet';
import { BenchContext, ScenarioResult, Measurement, spawnServe, cpuTicks, memory, sleep, waitFor, withFleet, have, machineTicks, nsFetch, metric } from './lib';

const INTER_MS = 1000, TIMEOUT_MS = 500, FASTINTER_MS = 250, RISE = 2, FALL = 3;
/** Backends silenced at once in the detection measurement. */
const VICTIMS = 20;

/** Timing of one configuration: the check interval and the fastinter used while a backend changes state. */
export interface Timing { inter: number; fastinter: number }
const FAST: Timing = { inter: INTER_MS, fastinter: FASTINTER_MS };
/** HAProxy's default: fastinter = inter. */
const DEFAULT_FAST: Timing = { inter: INTER_MS, fastinter: INTER_MS };
/** The bound on detection: fall x fastinter + timeout + 100 ms. */
const statedBound = (t: Timing) => FALL * t.fastinter + TIMEOUT_MS + 100;
/** The daemon's tick for these timings (src/daemon/monitor.ts tickFor): min(interval / 10, timeout / 5, 50 ms). */
const TICK_MS = 50;
/** Default jitter of the steady interval (config default 10 %). */
const JITTER = 0.1;
/** halfopen's own worst case: the first check within one jittered interval, fall - 1 more at fastinter, the last fails at its timeout; one tick late at most. */
const halfopenBound = (t: Timing) => t.inter * (1 + JITTER) + (FALL - 1) * t.fastinter + TIMEOUT_MS + TICK_MS;

/** Backend i: address i mod 65,536 of 198.18.0.0/16, port 80 + i div 65,536 (ports 80–95: up to 1,048,576 backends). */
export function backends(n: number): Array<{ name: string; ip: string; port: number }> {
  return Array.from({ length: n }, (_, i) => {
    const a = i % 65536, port = 80 + Math.floor(i / 65536);
    return { name: `b${i}`, ip: `198.18.${a >> 8}.${a & 255}`, port };
  });
}

export interface Counters {
  syns: number; acks: number;
  /** RSTs reaching backend ports, and the SYN+ACKs the backends sent: a RST answers each SYN+ACK, the rest were lost on the way. */
  rsts: number; synAcks: number;
}

/**
 * SYNs (checks) and handshake-completing ACKs (established connections)
 * reaching backend ports, counted at priority -50: before any chain a bench
 * adds to silence backends (-30 to -10) or the fleet's own drops (0), so a
 * SYN to a silent backend is counted as sent. Beside them the RSTs that
 * reach backend ports and the SYN+ACKs the backends send.
 */
export function installCounters(fleet: Fleet, ports: number[] = [80, 81]): () => Counters {
  const set = ports.join(', ');
  execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', '-f', '-'], {
    input: 'table inet bench_count {\n chain input {\n  type filter hook input priority -50;\n' +
      `  tcp dport { ${set} } tcp flags & (syn | ack | rst | fin) == syn counter\n` +
      `  tcp dport { ${set} } tcp flags & (syn | ack | rst | fin) == ack counter\n` +
      `  tcp dport { ${set} } tcp flags & rst == rst counter\n }\n` +
      ' chain output {\n  type filter hook output priority -50;\n' +
      `  tcp sport { ${set} } tcp flags & (syn | ack) == (syn | ack) counter\n }\n}\n`,
  });
  return () => {
    const out = execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', 'list', 'table', 'inet', 'bench_count'], { encoding: 'utf8' });
    const [syns, acks, rsts, synAcks] = [...out.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
    return { syns, acks, rsts, synAcks };
  };
}

/** Victims spread over the backend list. */
const victimsOf = (bs: Array<{ name: string; ip: string; port: number }>) =>
  Array.from({ length: Math.min(VICTIMS, bs.length) }, (_, k) => bs[Math.floor(((k + 0.5) * bs.length) / VICTIMS)]);

/**
 * Drops every packet to the victims from now on and waits until downAt() has
 * a time for each (15 s at most). Returns detection ms per victim (NaN if
 * never): the moment the tool marked it down minus the moment the drop rule
 * was in place.
 */
async function detection(fleet: Fleet, victims: Array<{ name: string; ip: string }>, downAt: () => Map<string, number>): Promise<{ median: number; max: number; min: number; missed: number }> {
  execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', '-f', '-'], {
    input: `table inet bench_silent {\n chain input {\n  type filter hook input priority -30;\n  ip daddr { ${victims.map((v) => v.ip).join(', ')} } drop\n }\n}\n`,
  });
  const t0 = Date.now();
  try {
    await waitFor(() => victims.every((v) => downAt().has(v.name)), 15_000, 20);
    const d = downAt();
    const ms = victims.map((v) => (d.has(v.name) ? d.get(v.name)! - t0 : NaN)).filter(Number.isFinite);
    ms.sort((a, b) => a - b);
    return { median: ms.length ? ms[Math.floor(ms.length / 2)] : NaN, max: ms.length ? ms[ms.length - 1] : NaN, min: ms.length ? ms[0] : NaN, missed: victims.length - ms.length };
  } finally {
    execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', 'delete', 'table', 'inet', 'bench_silent']);
  }
}

/** Poll period of the state poller, the same for both tools. */
const POLL_MS = 25;

/**
 * One poller for both tools, so their detection times are measured the same
 * way: a Node process in the prober namespace asks the tool for the state of
 * every backend every POLL_MS (halfopen: GET /backends; HAProxy: `show servers
 * state be` on its stats socket; one request for the whole list either way)
 * and prints "NAME MS" the first time it sees a backend down, MS being the
 * wall clock when that answer was read. Nothing from the tool's own
 * timestamps or logs goes into the figure.
 */
function startStatePoller(fleet: Fleet, source: { http: string } | { haproxySocket: string }): { downAt: () => Map<string, number>; stop: () => void } {
  const ask = 'http' in source
    ? `fetch(${JSON.stringify(source.http)}).then((r) => r.json()).then((bs) => bs.filter((b) => b.state === 'down').map((b) => b.name))`
    : `new Promise((resolve) => { const s = require('net').connect(${JSON.stringify(source.haproxySocket)}, () => s.write('show servers state be\\n')); let b = '';` +
      ` s.on('data', (d) => { b += d; }); s.on('close', () => resolve(b.split('\\n').map((l) => l.split(' ')).filter((f) => f.length > 5 && f[5] === '0').map((f) => f[3]))); s.on('error', () => resolve([])); })`;
  const script = `const seen = new Set(); let n = 0;
const tick = () => { if (++n > ${Math.ceil(120_000 / POLL_MS)}) return; const t = Date.now();
  (${ask}).then((down) => { const now = Date.now(); for (const name of down) if (!seen.has(name)) { seen.add(name); process.stdout.write(name + ' ' + now + '\\n'); } })
  .catch(() => {}).finally(() => setTimeout(tick, Math.max(0, ${POLL_MS} - (Date.now() - t)))); };
tick(); process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;
  const child = spawn('ip', ['netns', 'exec', fleet.prober, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'ignore'] });
  const down = new Map<string, number>();
  let buf = '';
  child.stdout!.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const [name, ms] = buf.slice(0, nl).split(' ');
      buf = buf.slice(nl + 1);
      if (!down.has(name)) down.set(name, Number(ms));
    }
  });
  return { downAt: () => down, stop: () => { child.stdin!.end(); if (child.exitCode === null) child.kill('SIGKILL'); } };
}

function detectFields(d: { median: number; max: number; min: number; missed: number }, t: Timing): Measurement {
  return { detectMs: d.median, detectMinMs: d.min, detectMaxMs: d.max, detectMissed: d.missed, statedBoundMs: statedBound(t) };
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(t);
}

/** Samples CPU and memory of pid over `seconds`; also returns a counter's delta. */
export async function sample(pid: number, seconds: number, counter: () => number): Promise<{ cpuPct: number; machinePct: number; rssMb: number; hwmMb: number; perSec: number }> {
  const t0 = cpuTicks(pid), m0 = machineTicks(), c0 = counter();
  let hwm = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) { await sleep(1000); hwm = Math.max(hwm, memory(pid).rssMb); }
  const t1 = cpuTicks(pid), m1 = machineTicks(), c1 = counter();
  return { cpuPct: (t1 - t0) / seconds, machinePct: (m1 - m0) / seconds, rssMb: memory(pid).rssMb, hwmMb: hwm, perSec: (c1 - c0) / seconds };
}

/**
 * With `on`, the fleet-side veth runs NAPI in its own kernel thread, so the
 * fleet's work for each check (and the prober kernel's work for the reply,
 * which it triggers) is charged to that thread instead of to the process
 * that sent the SYN, as on a real network where the backends are other
 * machines. veth only has NAPI with an XDP program (or GRO): an XDP_PASS one.
 */
export function fleetNapiThread(fleet: Fleet, on: boolean): void {
  const threaded = (v: number) => execFileSync('ip', ['netns', 'exec', fleet.fleet, 'sh', '-c', `echo ${v} > /sys/class/net/${fleet.fleetIf}/threaded`]);
  if (on) { fleet.attachFleetXdp('XDP_PASS'); threaded(1); } else { threaded(0); fleet.detachFleetXdp(); }
}

/** A `halfopen serve` running in the prober namespace. */
export interface ServeProcess {
  child: ChildProcess;
  /** The Node process of serve (for /proc and signals): `ip netns exec` execs it in place, checked here. */
  pid: number;
  /** Its stderr so far (the first MB). */
  stderr(): string;
  /** Each stderr line with the wall clock (ms) when it arrived: times the daemon's own log lines. */
  lines: Array<{ at: number; line: string }>;
  /** From spawn until serve said it is checking, ms. */
  startMs: number;
}

/** The pid of the Node process under `ip netns exec` (itself when exec'd in place, else its one child). */
function nodePid(pid: number): number {
  const isNode = (p: number) => { try { return fs.readlinkSync(`/proc/${p}/exe`) === fs.realpathSync(process.execPath); } catch { return false; } };
  if (isNode(pid)) return pid;
  const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  const k = kids.find(isNode);
  if (k === undefined) throw new Error(`no Node process under pid ${pid}`);
  return k;
}

/**
 * Starts `halfopen serve --config cfg` in the prober namespace and waits
 * (timeoutMs at most) until it says it is checking; stops it again on failure.
 */
export async function startServe(fleet: Fleet, cfg: string, timeoutMs = 30_000): Promise<ServeProcess> {
  const t0 = Date.now();
  const child = spawnServe(fleet, cfg);
  let err = '', carry = '';
  const lines: ServeProcess['lines'] = [];
  child.stderr!.on('data', (d) => {
    const at = Date.now(), text = String(d);
    if (err.length < 1 << 20) err += text;
    const parts = (carry + text).split('\n');
    carry = parts.pop()!;
    if (lines.length < 100_000) for (const line of parts) lines.push({ at, line });
  });
  try {
    if (!(await waitFor(() => /checking \d+ backends/.test(err) || child.exitCode !== null, timeoutMs))) throw new Error(`serve did not start within ${timeoutMs / 1000} s: ${err}`);
    if (child.exitCode !== null) throw new Error(`serve exited: ${err}`);
    return { child, pid: nodePid(child.pid!), stderr: () => err, lines, startMs: Date.now() - t0 };
  } catch (e) {
    await stopChild(child);
    throw e;
  }
}

/**
 * seconds = 0: detection only, no steady-state sample. detect: the timing for
 * the detection measurement, or null for none. hook: the config's probe.hook.
 */
async function runHalfopen(ctx: BenchContext, fleet: Fleet, count: () => Counters, n: number, inter: number, seconds: number, detect: Timing | null, hook: 'auto' | 'xdp' | 'tc' = 'auto'): Promise<Measurement> {
  const bs = backends(n);
  const fastinter = detect?.fastinter ?? FASTINTER_MS;
  const cfg = path.join(ctx.tmp, `serve-${n}-${fastinter}-${hook}.yaml`);
  const events = path.join(ctx.tmp, `serve-${n}-${fastinter}-${hook}.ndjson`);
  fs.writeFileSync(cfg, [
    `defaults: { interval: ${inter}ms, timeout: ${TIMEOUT_MS}ms, fastinter: ${fastinter}ms, rise: ${RISE}, fall: ${FALL} }`,
    'listen: { http: "127.0.0.1:9400" }',
    `probe: { hook: ${hook} }`,
    `events: ${events}`,
    'backends:',
    ...bs.map((b) => `  - { name: ${b.name}, host: ${b.ip}, port: ${b.port} }`),
  ].join('\n') + '\n');
  const serve = await startServe(fleet, cfg);
  const { child } = serve;
  const err = serve.stderr();
  try {
    const via = /via \S+ \(([^,]+),/.exec(err)?.[1];
    if (hook !== 'auto' && via !== (hook === 'tc' ? 'tc ingress' : 'generic XDP')) throw new Error(`serve did not use the ${hook} hook: ${err}`);
    const c0 = count();
    await sleep(Math.min(inter, 5000) + 2000); // every backend checked at least once
    let out: Measurement = {};
    if (seconds) {
      const s = await sample(serve.pid, seconds, () => count().syns);
      const m = nsFetch(fleet, 'http://127.0.0.1:9400/metrics');
      out = {
        cpuPct: s.cpuPct, machinePct: s.machinePct, rssMb: s.rssMb, peakRssMb: s.hwmMb, checksPerSec: s.perSec,
        lagMs: metric(m, 'halfopen_schedule_lag_seconds') * 1000,
        up: metric(m, 'halfopen_backends\\{state="up"\\}'),
        connections: count().acks - c0.acks,
      };
    }
    if (detect) {
      // Backends down before the drop (none should be) would count as detected at once.
      const poller = startStatePoller(fleet, { http: 'http://127.0.0.1:9400/backends' });
      try {
        await sleep(500);
        if (poller.downAt().size) throw new Error(`halfopen has backends down before the drop: ${[...poller.downAt().keys()].slice(0, 5).join(', ')}`);
        Object.assign(out, detectFields(await detection(fleet, victimsOf(bs), poller.downAt), detect), { ownBoundMs: halfopenBound(detect) });
      } finally {
        poller.stop();
      }
    }
    return out;
  } finally {
    await stopChild(child);
  }
}

/** HAProxy 2.6 checking backends(n) itself; `steady`: its timing when there is no detection measurement. */
export async function runHaproxy(ctx: BenchContext, fleet: Fleet, count: () => Counters, n: number, seconds: number, detect: Timing | null, steady: Timing = FAST): Promise<Measurement> {
  const bs = backends(n);
  const t = detect ?? steady;
  const dir = path.join(ctx.tmp, `haproxy-${n}-${t.fastinter}-${detect ? 'd' : 's'}`);
  fs.mkdirSync(dir, { recursive: true });
  const sock = path.join(dir, 'stats.sock');
  fs.writeFileSync(path.join(dir, 'haproxy.cfg'), [
    'global', `  stats socket ${sock} mode 600 level admin`, '  spread-checks 5', '  maxconn 1000', // HAProxy reserves ~2 fds per maxconn plus one per server; the fd limit here is 20,000
    'defaults', '  mode tcp', '  log global', '  timeout connect 500ms', '  timeout client 5s', '  timeout server 5s', `  timeout check ${TIMEOUT_MS}ms`,
    `  default-server check inter ${t.inter}ms fastinter ${t.fastinter}ms rise ${RISE} fall ${FALL}`,
    'backend be',
    ...bs.map((b) => `  server ${b.name} ${b.ip}:${b.port}`),
  ].join('\n') + '\n');
  const child = spawn('ip', ['netns', 'exec', fleet.prober, 'haproxy', '-db', '-f', path.join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => { if (err.length < 65536) err += d; });
  try {
    if (!(await waitFor(() => fs.existsSync(sock) || child.exitCode !== null, 30_000)) || child.exitCode !== null) throw new Error(`haproxy did not start: ${err}`);
    await sleep(INTER_MS + 2000);
    let out: Measurement = {};
    if (seconds) {
      const c0 = count();
      const s = await sample(child.pid!, seconds, () => count().syns);
      out = { cpuPct: s.cpuPct, machinePct: s.machinePct, rssMb: s.rssMb, peakRssMb: s.hwmMb, checksPerSec: s.perSec, connections: count().acks - c0.acks };
    }
    if (!detect) return out;
    const poller = startStatePoller(fleet, { haproxySocket: sock });
    try {
      await sleep(500);
      if (poller.downAt().size) throw new Error(`HAProxy has servers down before the drop: ${[...poller.downAt().keys()].slice(0, 5).join(', ')}`);
      Object.assign(out, detectFields(await detection(fleet, victimsOf(bs), poller.downAt), detect));
    } finally {
      poller.stop();
    }
    return out;
  } finally {
    await stopChild(child);
  }
}

export async function serveScenario(ctx: BenchContext): Promise<ScenarioResult> {
  // Steady-state sample per tool: the 10,000-backend pair is the one the targets are about.
  const secondsFor = (n: number) => (ctx.quick ? 10 : n === 10_000 ? 60 : n >= 100_000 ? 45 : 30);
  const sizes = ctx.quick ? [1000] : [1000, 10_000];
  const big = ctx.quick ? 0 : 100_000;
  const rows: ScenarioResult['rows'] = [];
  const timing = (t: Timing) => `interval ${t.inter / 1000}s, timeout ${TIMEOUT_MS}ms, fall ${FALL}, fastinter ${t.fastinter}ms`;
  await withFleet({ tag: 'serve', v4: '198.18.0.0/16', open: [80, 81] }, async (fleet) => {
    const count = installCounters(fleet);
    for (const n of sizes) {
      const seconds = secondsFor(n);
      ctx.log(`  serve: halfopen, ${n} backends at ${INTER_MS} ms, ${seconds} s`);
      rows.push({ tool: `halfopen serve (${n})`, settings: timing(FAST), runs: [await runHalfopen(ctx, fleet, count, n, INTER_MS, seconds, FAST)] });
      if (have('haproxy')) {
        ctx.log(`  serve: HAProxy, ${n} backends at inter ${INTER_MS} ms, ${seconds} s`);
        rows.push({ tool: `HAProxy 2.6 checks (${n})`, settings: `check ${timing(FAST)}`, runs: [await runHaproxy(ctx, fleet, count, n, seconds, FAST)] });
      }
    }
    // Detection only, with HAProxy's default fastinter (= inter).
    const n = sizes[0];
    ctx.log(`  serve: detection with fastinter = interval, ${n} backends`);
    rows.push({ tool: `halfopen serve (${n}, fastinter = inter)`, settings: timing(DEFAULT_FAST), runs: [await runHalfopen(ctx, fleet, count, n, INTER_MS, 0, DEFAULT_FAST)] });
    if (have('haproxy')) rows.push({ tool: `HAProxy 2.6 checks (${n}, fastinter = inter)`, settings: `check ${timing(DEFAULT_FAST)}`, runs: [await runHaproxy(ctx, fleet, count, n, 0, DEFAULT_FAST)] });
    // The same at the largest size, with the fleet's kernel in its own thread.
    const threadSeconds = ctx.quick ? 10 : 30, tn = sizes[sizes.length - 1];
    fleetNapiThread(fleet, true);
    try {
      ctx.log(`  serve: halfopen and HAProxy, ${tn} backends, fleet NAPI in its own thread, ${threadSeconds} s`);
      rows.push({ tool: `halfopen serve (${tn}, fleet in its own thread)`, settings: timing(FAST), runs: [await runHalfopen(ctx, fleet, count, tn, INTER_MS, threadSeconds, null)] });
      if (have('haproxy')) rows.push({ tool: `HAProxy 2.6 checks (${tn}, fleet in its own thread)`, settings: `check ${timing(FAST)}`, runs: [await runHaproxy(ctx, fleet, count, tn, threadSeconds, null)] });
    } finally {
      fleetNapiThread(fleet, false);
    }
    if (big) {
      ctx.log(`  serve: halfopen, ${big} backends at 10 s, ${secondsFor(big)} s`);
      rows.push({ tool: `halfopen serve (${big})`, settings: 'interval 10s', runs: [await runHalfopen(ctx, fleet, count, big, 10_000, secondsFor(big), null)] });
    }
  });
  return {
    id: 'serve',
    title: 'Sidecar: continuous health checks',
    notes: [
      `Steady state per tool after a warm-up, one run each: ${secondsFor(10_000)} s at 10,000 backends, ${secondsFor(1000)} s at 1,000, ${secondsFor(100_000)} s at 100,000, ${ctx.quick ? 10 : 30} s for the fleet-in-its-own-thread pair. CPU is the share of one core (user + sys of the process).`,
      'checks/s: SYNs reaching backend ports, counted in the fleet\'s firewall while only that tool runs. Connections: handshake-completing ACKs counted the same way (halfopen must make none; HAProxy 2.6\'s plain TCP checks on Linux delay that ACK and reset, so they make none either).',
      `Detection: ${VICTIMS} backends spread over the list have every packet dropped at once; for each, the time from the drop rule until the same state poller first saw it down (one Node process in the prober namespace asking for every backend's state every ${POLL_MS} ms: halfopen's GET /backends, HAProxy's \`show servers state\` on its stats socket; so both figures include up to one poll period and one request, measured identically). The columns give the median, min and max over the ${VICTIMS}; none may be missed.`,
      `Stated bound: fall × fastinter + timeout + 100 ms. halfopen's worst case is interval × (1 + jitter) + (fall − 1) × fastinter + timeout + one tick (${halfopenBound(FAST)} ms at fastinter ${FASTINTER_MS} ms, ${halfopenBound(DEFAULT_FAST)} ms at fastinter = interval): the first check after the stop comes up to one interval later (no prober can see a stop before it checks), then unanswered checks overlap at fastinter instead of waiting out each timeout. So the stated bound is reachable when fastinter is about the interval, as with HAProxy's default fastinter = inter (second pair of rows); with a fastinter much shorter than the interval, the wait for the first check alone can exceed it, for any prober.`,
      'The fleet\'s kernel shares the same 2 cores. On a veth pair it does its work for a SYN (and the prober kernel its work for the reply) inside the send call of whichever process sent it, so both tools\' CPU includes the backends\' side of every check. Rows marked "fleet in its own thread" run the fleet-side veth\'s NAPI in a kernel thread (an XDP_PASS program gives veth NAPI; /sys/class/net/IF/threaded = 1), which moves that work out of the tools, as on a real network. Machine CPU is every process and the kernel on both cores (/proc/stat), fleet included.',
    ],
    columns: [
      { key: 'cpuPct', label: 'CPU % of a core', digits: 1, ratio: 'lower-is-better' },
      { key: 'machinePct', label: 'machine CPU % of a core', digits: 1, ratio: 'lower-is-better' },
      { key: 'rssMb', label: 'RSS MB', digits: 0, ratio: 'lower-is-better' },
      { key: 'checksPerSec', label: 'checks/s', digits: 0 },
      { key: 'detectMs', label: `detection ms, median of ${VICTIMS}`, digits: 0 },
      { key: 'detectMinMs', label: 'min', digits: 0 },
      { key: 'detectMaxMs', label: 'max', digits: 0 },
      { key: 'statedBoundMs', label: 'stated bound ms', digits: 0 },
      { key: 'ownBoundMs', label: 'halfopen worst case ms', digits: 0 },
      { key: 'detectMissed', label: 'not detected', digits: 0 },
      { key: 'connections', label: 'connections established with backends', digits: 0 },
      { key: 'lagMs', label: 'schedule lag ms', digits: 0 },
    ],
    baseline: 'halfopen',
    rows,
  };
}

/**
 * An XDP_PASS program on the prober's own veth (native mode), standing for
 * whatever else runs on a balancer's NIC; detached with `ip link … xdpdrv off`.
 */
function attachProberPassAll(fleet: Fleet): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-pass-'));
  try {
    const src = path.join(dir, 'pass.c'), obj = path.join(dir, 'pass.o');
    fs.writeFileSync(src, '#include <linux/bpf.h>\n__attribute__((section("xdp"), used)) int pass_all(struct xdp_md *ctx) { return XDP_PASS; }\nchar _license[] __attribute__((section("license"), used)) = "GPL";\n');
    execFileSync('clang', ['-O2', '-target', 'bpf', `-I/usr/include/${os.machine()}-linux-gnu`, '-c', src, '-o', obj]);
    execFileSync('ip', ['-n', fleet.prober, 'link', 'set', 'dev', fleet.proberIf, 'xdpdrv', 'obj', obj, 'sec', 'xdp']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The sidecar on each hook: serve with the matcher at XDP (the default),
 * at tc ingress (probe.hook: tc), and at tc because a pass-all XDP program
 * holds the hook (the fallback as it happens on a shared NIC, that
 * program's cost included). Same backends, same timings, one after another.
 */
export async function serveHookScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const sizes = ctx.quick ? [1000] : [1000, 10_000];
  const seconds = ctx.quick ? 10 : 20;
  const rows: ScenarioResult['rows'] = [];
  const settings = `interval ${INTER_MS / 1000}s, timeout ${TIMEOUT_MS}ms`;
  await withFleet({ tag: 'hook', v4: '198.18.0.0/16', open: [80, 81] }, async (fleet) => {
    const count = installCounters(fleet);
    for (const n of sizes) {
      ctx.log(`  serve-hook: ${n} backends, XDP, ${seconds} s`);
      rows.push({ tool: `halfopen serve at XDP (${n})`, settings, runs: [await runHalfopen(ctx, fleet, count, n, INTER_MS, seconds, null, 'xdp')] });
      ctx.log(`  serve-hook: ${n} backends, tc ingress, ${seconds} s`);
      rows.push({ tool: `halfopen serve at tc ingress (${n})`, settings: `${settings}, probe.hook: tc`, runs: [await runHalfopen(ctx, fleet, count, n, INTER_MS, seconds, null, 'tc')] });
      ctx.log(`  serve-hook: ${n} backends, tc behind a pass-all XDP program, ${seconds} s`);
      attachProberPassAll(fleet);
      try {
        rows.push({ tool: `halfopen serve at tc, behind an XDP_PASS program (${n})`, settings: `${settings}, probe.hook: auto`, runs: [await runHalfopen(ctx, fleet, count, n, INTER_MS, seconds, null, 'auto')] });
      } finally {
        execFileSync('ip', ['-n', fleet.prober, 'link', 'set', 'dev', fleet.proberIf, 'xdpdrv', 'off']);
      }
    }
  });
  return {
    id: 'serve-hook',
    title: 'Sidecar on each hook: XDP vs tc ingress',
    notes: [
      `Steady state after a warm-up, ${seconds} s per row, one run each, all backends open. CPU is the share of one core (user + sys of the serve process); machine CPU is both cores, fleet included (the fleet's kernel shares them, and does its work for a check inside the sender's system call).`,
      'XDP: the matcher on the XDP hook (generic mode on veth), AF_PACKET sends, RSTs from XDP. tc ingress: the same matcher through a tcx link, raw-socket sends (so conntrack knows the SYN), RSTs from the kernel. The third row adds an XDP_PASS program holding the XDP hook (native mode on the prober\'s veth), as on a shared NIC: halfopen falls back to tc by itself.',
      'checks/s: SYNs reaching backend ports, counted in the fleet\'s firewall. Each tc row is compared with the XDP row of the same size. The tc rows differ from the XDP row in two ways: where the matcher runs, and the send path and RST that go with it (raw socket and kernel RST, against AF_PACKET and XDP_TX).',
    ],
    columns: [
      { key: 'cpuPct', label: 'CPU % of a core', digits: 1, ratio: 'lower-is-better' },
      { key: 'machinePct', label: 'machine CPU % of a core', digits: 1, ratio: 'lower-is-better' },
      { key: 'rssMb', label: 'RSS MB', digits: 0, ratio: 'lower-is-better' },
      { key: 'checksPerSec', label: 'checks/s', digits: 0 },
      { key: 'up', label: 'backends up', digits: 0 },
      { key: 'connections', label: 'connections established with backends', digits: 0 },
      { key: 'lagMs', label: 'schedule lag ms', digits: 0 },
    ],
    baseline: 'halfopen serve at XDP',
    rows,
  };
}
