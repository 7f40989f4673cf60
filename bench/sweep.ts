// Sweep scenarios: halfopen and its peers (zmap, masscan, nmap) on the same
// namespace fleet in the same run. Every figure is scored against the fleet's
// ground truth (how it was built), never against another tool's output.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Fleet, PROBER_V4 } from '../src/fleet/fleet';
import { mustParseAddress, formatAddress } from '../src/targets/address';
import { BenchContext, Column, MAIN, Measurement, Scenario, ScenarioResult, have, timed, toolVersion, withFleet } from './lib';

// The two ratios are named for what they measure: how long until the whole
// result is in (a fleet with silent targets, so every tool waits for what
// never answers), and CPU per probe with the fleet's kernel work in a thread
// of its own (charged to neither tool). The exactness columns come from the
// fleet's ground truth.
export const SWEEP_COLUMNS: Column[] = [
  { key: 'wall', label: 'time to a complete result s', digits: 2, ratio: 'lower-is-better' },
  { key: 'pps', label: 'probes/s (over that time)', digits: 0 },
  { key: 'missed', label: 'missed open', digits: 0 },
  { key: 'falseOpen', label: 'false open', digits: 0 },
  { key: 'wrong', label: 'wrong verdicts (all states)', digits: 0 },
  { key: 'cpu', label: 'CPU s', digits: 2 },
  { key: 'cpuPerProbeUs', label: 'CPU µs per probe', digits: 2, ratio: 'lower-is-better' },
  { key: 'rssMb', label: 'peak RSS MB', digits: 0, ratio: 'lower-is-better' },
];
// masscan rows also carry `capped` (1 when the run was cut at MASSCAN_CAP_S), kept in the JSON.

/**
 * Silent targets in the /16 comparison fleets: 198.18.224.0/20 and
 * 198.18.252.0/24, 4,352 of 65,536 addresses (6.6 %), dropped by nftables
 * (clear of the RST range 198.18.254.0/23 of sweep65k: a drop would win there).
 * Without them every probe is answered and a tool that stops at its last
 * verdict wins by the fixed cool-down its peers sit out; with them every tool
 * has to wait for what never answers, as on a real network.
 */
const SILENT_V4 = ['198.18.224.0/20', '198.18.252.0/24'];
const SILENT_V4_QUICK = ['198.18.14.0/24'];

/**
 * The fleet-side veth runs its NAPI in a kernel thread of its own (an XDP_PASS
 * program gives veth NAPI; /sys/class/net/IF/threaded = 1): the fleet's work
 * for each probe, and the prober kernel's receive work it triggers, are then
 * charged to that thread instead of to whichever tool sent the SYN (as on a
 * real network, where the targets are other machines). Same as bench/serve.ts.
 */
function fleetNapiThread(fleet: Fleet): void {
  fleet.attachFleetXdp('XDP_PASS');
  execFileSync('ip', ['netns', 'exec', fleet.fleet, 'sh', '-c', `echo 1 > /sys/class/net/${fleet.fleetIf}/threaded`]);
  // The NAPI thread takes SYNs from a 256-packet ring. With veth's default
  // noqueue, a send into a full ring fails (ENOBUFS) and zmap aborts after its
  // first failure; with a queue the ring pushes back on it instead, as a NIC's
  // does. halfopen's AF_PACKET sends bypass the qdisc (PACKET_QDISC_BYPASS)
  // and resend what failed itself.
  execFileSync('tc', ['-n', fleet.prober, 'qdisc', 'replace', 'dev', fleet.proberIf, 'root', 'pfifo', 'limit', '100000']);
}

const FAIR_NOTE = 'Every tool runs with the fleet-side veth\'s NAPI in its own kernel thread (an XDP_PASS program on the fleet veth, /sys/class/net/IF/threaded = 1; a pfifo qdisc on the prober veth, so that a full NAPI ring queues sends instead of failing them): the fleet\'s work for each probe is charged to neither tool, so "CPU µs per probe" is the tool\'s own cost. "time to a complete result" is the whole process, start to exit, on a fleet where 6.6 % of the targets never answer: halfopen waits its timeout and one retry for those, zmap and masscan their fixed cool-down. The ratio columns compare these two; the exactness columns (missed, false open, wrong) are scored against how the fleet was built.';

// zmap at its fastest: -r 0 is no rate limit. On this fleet (65,536 targets, 3
// runs each) it took 1.33-1.38 s, against 1.40-1.42 s at 2M/s and 1.46-1.49 s
// at 300k/s, with the same 1-4 missed opens.
const ZMAP_RATE = '0';
const MASSCAN_RATE = '300000';
/** Longest a masscan run may take before it is cut (see runMasscan). */
const MASSCAN_CAP_S = 30;
const NMAP_FLAGS = ['-sS', '-T5', '--min-rate', '20000'];
const MASSCAN_NOTE = 'masscan\'s wall time varies widely from run to run (see min–max). In the runs we watched, its status line showed the sending at about 300k/s, then `waiting -N secs` counting on below zero, past its `--wait 1`, for several seconds (once over 100 s) before it exited. A masscan run is cut at 30 s (SIGKILL through `timeout`) and counted with 30 s and what it had written by then; the JSON marks such runs `capped: 1`.';

type Target = [bigint, number];

/**
 * Ctrl-C reaches the measured child (same process group) while Node waits for
 * it synchronously and cannot run its signal handler: a child that died of
 * SIGINT or SIGTERM (exit 130 or 143) stops the scenario, whose finally
 * blocks then remove its fleet.
 */
export function stopIfInterrupted(tool: string, exit: number): void {
  if (exit === 130 || exit === 143) throw new Error(`interrupted: ${tool} was stopped by a signal (exit ${exit})`);
}

function v4Targets(prefix: string, ports: number[]): Target[] {
  const [a, len] = prefix.split('/');
  const base = mustParseAddress(a);
  const n = 2 ** (32 - Number(len));
  const out: Target[] = [];
  for (let i = 0; i < n; i++) for (const p of ports) out.push([base + BigInt(i), p]);
  return out;
}

/** "ip port" of every target the fleet makes open. */
function truthOpens(fleet: Fleet, targets: Target[]): Set<string> {
  const s = new Set<string>();
  for (const [a, p] of targets) if (fleet.truth(a, p) === 'open') s.add(`${formatAddress(a)} ${p}`);
  return s;
}

/** Missed opens and false opens of a tool's reported opens against the truth. */
function score(truth: Set<string>, opens: Set<string>): { open: number; missed: number; falseOpen: number } {
  let missed = 0, falseOpen = 0;
  for (const k of truth) if (!opens.has(k)) missed++;
  for (const k of opens) if (!truth.has(k)) falseOpen++;
  return { open: opens.size, missed, falseOpen };
}

const readLines = (file: string): string[] => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);

/** halfopen's ndjson: opens, and how many verdicts (any state) differ from the truth or are missing. */
function halfopenScore(fleet: Fleet, file: string, probes: number): { opens: Set<string>; wrong: number } {
  const opens = new Set<string>();
  let n = 0, wrong = 0;
  for (const l of readLines(file)) {
    const r = JSON.parse(l);
    n++;
    if (r.state === 'open') opens.add(`${r.ip} ${r.port}`);
    if (fleet.truth(mustParseAddress(r.ip), r.port) !== r.state) wrong++;
  }
  return { opens, wrong: wrong + Math.abs(probes - n) };
}

function macs(fleet: Fleet): { gw: string; me: string } {
  return {
    gw: fleet.exec('fleet', 'cat', [`/sys/class/net/${fleet.fleetIf}/address`]).trim(),
    me: fleet.exec('prober', 'cat', [`/sys/class/net/${fleet.proberIf}/address`]).trim(),
  };
}

interface Work { prefix: string; ports: number[]; portSpec: string; targets: Target[]; truth: Set<string> }

function work(fleet: Fleet, prefix: string, ports: number[]): Work {
  const targets = v4Targets(prefix, ports);
  const portSpec = ports.length === 1 ? String(ports[0]) : `${ports[0]}-${ports[ports.length - 1]}`;
  return { prefix, ports, portSpec, targets, truth: truthOpens(fleet, targets) };
}

const measure = (t: { wall: number; cpu: number; rssMb: number; exit: number }, probes: number, s: { missed: number; falseOpen: number }, extra: Measurement = {}): Measurement =>
  ({ wall: t.wall, probes, pps: probes / t.wall, missed: s.missed, falseOpen: s.falseOpen, cpu: t.cpu, cpuPerProbeUs: (t.cpu / probes) * 1e6, rssMb: t.rssMb, exit: t.exit, ...extra });

/** `env -u NODE_EXTRA_CA_CERTS`: see sweep65k. */
const WITHOUT_EXTRA_CA = ['env', '-u', 'NODE_EXTRA_CA_CERTS'];

function runHalfopen(ctx: BenchContext, fleet: Fleet, w: Work, flags: string[], wrap: string[] = []): Measurement {
  const out = path.join(ctx.tmp, 'halfopen.ndjson');
  const t = timed(fleet, [...wrap, process.execPath, MAIN, 'sweep', w.prefix, '-p', w.portSpec, ...flags, '--format', 'ndjson', '--no-progress'], out, ctx.tmp);
  stopIfInterrupted('halfopen', t.exit);
  const { opens, wrong } = halfopenScore(fleet, out, w.targets.length);
  return measure(t, w.targets.length, score(w.truth, opens), { wrong });
}

/** zmap 2.1 scans one port per run: a multi-port sweep is one run per port, back to back (times and CPU add up). */
function runZmap(ctx: BenchContext, fleet: Fleet, w: Work, cooldownS = 1): Measurement {
  const { gw } = macs(fleet);
  const opens = new Set<string>();
  let wall = 0, cpu = 0, rssMb = 0, exit = 0;
  for (const port of w.ports) {
    const out = path.join(ctx.tmp, 'zmap.txt');
    const t = timed(fleet, ['zmap', '-q', '--disable-syslog', '-p', String(port), '-i', fleet.proberIf, '-S', PROBER_V4, '-G', gw, '-b', '/dev/null',
      '-r', ZMAP_RATE, '-c', String(cooldownS), '-o', out, w.prefix], path.join(ctx.tmp, 'zmap.stdout'), ctx.tmp);
    stopIfInterrupted('zmap', t.exit);
    for (const l of readLines(out)) if (/^\d/.test(l)) opens.add(`${l.trim()} ${port}`);
    wall += t.wall; cpu += t.cpu; rssMb = Math.max(rssMb, t.rssMb); exit ||= t.exit;
  }
  return measure({ wall, cpu, rssMb, exit }, w.targets.length, score(w.truth, opens));
}

function runMasscan(ctx: BenchContext, fleet: Fleet, w: Work): Measurement {
  const { gw, me } = macs(fleet);
  const out = path.join(ctx.tmp, 'masscan.txt');
  // masscan now and then keeps "waiting -N secs" far past its --wait (up to ~100 s seen): a run is
  // cut at MASSCAN_CAP_S by SIGKILL, counted with that wall time and what it had written (capped: 1).
  // --foreground: timeout waits for masscan and exits 137 itself, so /usr/bin/time still counts masscan's CPU.
  const t = timed(fleet, ['timeout', '--foreground', '-s', 'KILL', String(MASSCAN_CAP_S), 'masscan', w.prefix, `-p${w.portSpec}`, '--rate', MASSCAN_RATE, '--adapter', fleet.proberIf, '--adapter-ip', PROBER_V4,
    '--adapter-mac', me, '--router-mac', gw, '--wait', '1', '-oL', out], path.join(ctx.tmp, 'masscan.stdout'), ctx.tmp);
  stopIfInterrupted('masscan', t.exit);
  // -oL: "open tcp PORT IP TIMESTAMP"
  const opens = new Set(readLines(out).filter((l) => l.startsWith('open')).map((l) => { const f = l.split(' '); return `${f[3]} ${f[2]}`; }));
  const capped = t.exit === 137 ? 1 : 0;
  return measure({ ...t, exit: capped ? 0 : t.exit }, w.targets.length, score(w.truth, opens), { capped });
}

function runNmap(ctx: BenchContext, fleet: Fleet, w: Work): Measurement {
  const out = path.join(ctx.tmp, 'nmap.gnmap');
  const t = timed(fleet, ['nmap', '-n', '-Pn', '-p', w.portSpec, '-e', fleet.proberIf, ...NMAP_FLAGS, '-oG', out, w.prefix], path.join(ctx.tmp, 'nmap.stdout'), ctx.tmp);
  stopIfInterrupted('nmap', t.exit);
  // -oG: "Host: IP ()\tPorts: 80/open/tcp//http///, 81/closed/tcp//…"
  const opens = new Set<string>();
  for (const l of readLines(out)) {
    const m = /^Host: (\S+) .*Ports: (.*)$/.exec(l);
    if (!m) continue;
    for (const p of m[2].split(', ')) { const [port, state] = p.split('/'); if (state === 'open') opens.add(`${m[1]} ${port}`); }
  }
  return measure(t, w.targets.length, score(w.truth, opens));
}

type Row = ScenarioResult['rows'][number];

function rowOf(rows: Row[], tool: string, settings: string): Row {
  let r = rows.find((x) => x.tool === tool);
  if (!r) rows.push(r = { tool, settings, runs: [] });
  return r;
}

function logRun(ctx: BenchContext, tool: string, m: Measurement): void {
  ctx.log(`${tool}: ${m.wall.toFixed(2)} s, ${Math.round(m.pps)}/s, missed ${m.missed}, false open ${m.falseOpen}${m.wrong !== undefined ? `, wrong ${m.wrong}` : ''}, CPU ${m.cpu.toFixed(2)} s, RSS ${m.rssMb.toFixed(0)} MB${m.exit ? `, exit ${m.exit}` : ''}`);
}

/** "zmap 2.1.1": the tool's name and the version it reports. */
const version = (cmd: string): string => {
  const name = cmd.split(' ')[0];
  const v = /\d+\.\d+(\.\d+)?/.exec(toolVersion(cmd))?.[0];
  return v ? `${name} ${v}` : name;
};

/** halfopen's settings in the comparisons: half a second for replies after each pass, one resend of what got none. */
export const HALFOPEN_FLAGS = ['--rate', '0', '--timeout', '500', '--retries', '1'];

/**
 * 65,536 targets × 1 port (quick: 4,096 × 1): most open, 512 answer RST,
 * 6.6 % silent (dropped). Every tool runs the full set; the runs of all tools
 * are interleaved.
 */
export const sweep65k: Scenario = async (ctx) => {
  const prefix = ctx.quick ? '198.18.0.0/20' : '198.18.0.0/16';
  const closed = ctx.quick ? ['198.18.15.0/24'] : ['198.18.254.0/23'];
  const drop = ctx.quick ? SILENT_V4_QUICK : SILENT_V4;
  const rows: Row[] = [];
  const notes: string[] = [];
  const extraCa = !!process.env.NODE_EXTRA_CA_CERTS;
  if (extraCa) notes.push(`NODE_EXTRA_CA_CERTS is set in this environment, and Node 20 then parses its whole CA store before running any code: bare \`node -e 0\` starts in ${nodeStartMs([])} ms with it and ${nodeStartMs(WITHOUT_EXTRA_CA)} ms without (median of 10). halfopen makes no TLS connection; the second row runs it with the variable unset. The first row, with it, is the one compared.`);
  const flags = HALFOPEN_FLAGS.join(' ');
  let silentCount = 0;
  await withFleet({ tag: 'bench', v4: prefix, open: [80], closed, drop }, async (fleet) => {
    fleetNapiThread(fleet);
    const w = work(fleet, prefix, [80]);
    const silent = silentCount = w.targets.filter(([a, p]) => fleet.truth(a, p) === 'filtered').length;
    const rst = w.targets.filter(([a, p]) => fleet.truth(a, p) === 'closed').length;
    if (!silent || !rst) throw new Error(`the fleet must have silent and RST targets: ${silent} silent, ${rst} RST`);
    notes.push(`${w.targets.length.toLocaleString('en-US')} targets (${prefix}) on port 80: ${w.truth.size.toLocaleString('en-US')} open, ${silent.toLocaleString('en-US')} silent (${(100 * silent / w.targets.length).toFixed(1)} %, nftables \`drop\` on ${drop.join(', ')}), ${rst.toLocaleString('en-US')} answer RST (nftables \`reject with tcp reset\` on ${closed.join(', ')}).`);
    for (let i = 0; i < ctx.runs; i++) {
      ctx.log(`run ${i + 1}/${ctx.runs}`);
      let m = runHalfopen(ctx, fleet, w, HALFOPEN_FLAGS);
      rowOf(rows, 'halfopen', flags).runs.push(m); logRun(ctx, 'halfopen', m);
      if (extraCa) {
        m = runHalfopen(ctx, fleet, w, HALFOPEN_FLAGS, WITHOUT_EXTRA_CA);
        rowOf(rows, 'halfopen, NODE_EXTRA_CA_CERTS unset', flags).runs.push(m); logRun(ctx, 'halfopen (no extra CA)', m);
      }
      if (have('zmap')) { m = runZmap(ctx, fleet, w); rowOf(rows, version('zmap --version'), `-r ${ZMAP_RATE} -c 1`).runs.push(m); logRun(ctx, 'zmap', m); }
      // zmap's cool-down starts when its last SYN is handed to the kernel; with SYNs still queued for the
      // fleet's NAPI thread, late replies fall after it. A longer cool-down shows what exactness costs zmap.
      if (have('zmap')) { m = runZmap(ctx, fleet, w, 3); rowOf(rows, `${version('zmap --version')}, -c 3`, `-r ${ZMAP_RATE} -c 3`).runs.push(m); logRun(ctx, 'zmap -c 3', m); }
      if (have('masscan')) { m = runMasscan(ctx, fleet, w); rowOf(rows, version('masscan --version'), `--rate ${MASSCAN_RATE} --wait 1`).runs.push(m); logRun(ctx, 'masscan', m); }
      if (have('nmap')) { m = runNmap(ctx, fleet, w); rowOf(rows, version('nmap --version'), NMAP_FLAGS.join(' ')).runs.push(m); logRun(ctx, 'nmap', m); }
    }
  });
  for (const t of ['zmap', 'masscan', 'nmap']) if (!have(t)) notes.push(`${t} is not installed: skipped.`);
  notes.push(FAIR_NOTE);
  const paired = pairedRatios(rows, 'halfopen', 'zmap');
  if (paired) notes.push(`Round by round (the tools of a round run back to back, so a slow spell of the machine hits both): zmap's time to a complete result ÷ halfopen's is ${paired}.`);
  const cpuPaired = pairedRatios(rows, 'halfopen', 'zmap', 'cpu');
  if (cpuPaired) notes.push(`The same for CPU: zmap's CPU ÷ halfopen's is ${cpuPaired}.`);
  notes.push(MASSCAN_NOTE);
  notes.push('zmap: `-r 0` (no rate limit), `-c 1` (1 s cool-down for late replies), `-b /dev/null` (its default blocklist holds 198.18.0.0/15) and `-G` the gateway MAC; masscan: `--wait 1`, `--adapter-ip/--adapter-mac/--router-mac`; nmap: `-n -Pn -e IF`. zmap and masscan send each probe once; halfopen resends unanswered probes once (`--retries 1`), waiting 500 ms after each pass.');
  return { id: 'sweep65k', title: `Sweep: ${ctx.quick ? '4,096' : '65,536'} targets × 1 port, ${(100 * silentCount / (ctx.quick ? 4096 : 65536)).toFixed(1)} % silent`, notes, columns: SWEEP_COLUMNS, baseline: 'halfopen', rows };
};

/** Median of 10 bare Node starts (ms to the first line of user code), with `wrap` before node. */
function nodeStartMs(wrap: string[]): number {
  const xs: number[] = [];
  for (let i = 0; i < 10; i++) {
    const argv = [...wrap, process.execPath, '-e', 'process.stdout.write(String(performance.now()))'];
    xs.push(Number(execFileSync(argv[0], argv.slice(1), { encoding: 'utf8' })));
  }
  xs.sort((a, b) => a - b);
  return Math.round(xs[5]);
}

/** "median 3.1× (2.9–3.5×) over 5 rounds": peer ÷ base of one measure (wall by default) per round, or null without both. */
function pairedRatios(rows: Row[], base: string, peer: string, key = 'wall'): string | null {
  const b = rows.find((r) => r.tool === base), p = rows.find((r) => r.tool.startsWith(peer));
  if (!b || !p) return null;
  const n = Math.min(b.runs.length, p.runs.length);
  const xs = Array.from({ length: n }, (_, i) => p.runs[i][key] / b.runs[i][key]).sort((x, y) => x - y);
  if (!xs.length) return null;
  const f = (x: number) => `${x.toFixed(2)}×`;
  return `median ${f(xs[Math.floor(xs.length / 2)])} (${f(xs[0])}–${f(xs[xs.length - 1])}) over ${n} rounds`;
}

/**
 * 1,048,576 probes: a /16 × 16 ports, 4 of them open (quick: a /20 × 16).
 * nmap gets a 4,096-target subset (65,536 probes): at ~15k probes/s the full
 * million would take over a minute per run.
 */
export const sweep1m: Scenario = async (ctx) => {
  const prefix = ctx.quick ? '198.18.0.0/20' : '198.18.0.0/16';
  const nmapPrefix = ctx.quick ? '198.18.0.0/24' : '198.18.0.0/20';
  const ports = Array.from({ length: 16 }, (_, i) => 80 + i);
  const rows: Row[] = [];
  const notes: string[] = [];
  const drop = ctx.quick ? SILENT_V4_QUICK : SILENT_V4;
  await withFleet({ tag: 'bench', v4: prefix, open: [80, 81, 82, 83], drop }, async (fleet) => {
    fleetNapiThread(fleet);
    const w = work(fleet, prefix, ports);
    const wn = work(fleet, nmapPrefix, ports);
    const silent = w.targets.filter(([a, p]) => fleet.truth(a, p) === 'filtered').length;
    notes.push(`${w.targets.length.toLocaleString('en-US')} probes: ${prefix} × ports 80–95; 80–83 open (${w.truth.size.toLocaleString('en-US')}), ${silent.toLocaleString('en-US')} silent (${drop.join(', ')} dropped), the rest closed (RST).`);
    notes.push(`nmap runs on a subset, ${nmapPrefix} × 16 ports = ${wn.targets.length.toLocaleString('en-US')} probes (its probes/s is over that subset): at its 15–30k probes/s the full million would take about a minute per run.`);
    notes.push('zmap 2.1 scans one port per invocation: its figures are 16 back-to-back runs (wall and CPU summed, each with its 1 s cool-down; RSS is the largest).');
    for (let i = 0; i < ctx.runs; i++) {
      ctx.log(`run ${i + 1}/${ctx.runs}`);
      let m = runHalfopen(ctx, fleet, w, HALFOPEN_FLAGS);
      rowOf(rows, 'halfopen', HALFOPEN_FLAGS.join(' ')).runs.push(m); logRun(ctx, 'halfopen', m);
      if (have('masscan')) { m = runMasscan(ctx, fleet, w); rowOf(rows, version('masscan --version'), `--rate ${MASSCAN_RATE} --wait 1`).runs.push(m); logRun(ctx, 'masscan', m); }
      if (have('zmap')) { m = runZmap(ctx, fleet, w); rowOf(rows, version('zmap --version'), `-r ${ZMAP_RATE} -c 1, once per port`).runs.push(m); logRun(ctx, 'zmap', m); }
      if (have('nmap')) { m = runNmap(ctx, fleet, wn); rowOf(rows, `${version('nmap --version')} (subset)`, NMAP_FLAGS.join(' ')).runs.push(m); logRun(ctx, 'nmap', m); }
    }
  });
  for (const t of ['zmap', 'masscan', 'nmap']) if (!have(t)) notes.push(`${t} is not installed: skipped.`);
  notes.push(FAIR_NOTE);
  notes.push(MASSCAN_NOTE);
  return { id: 'sweep1m', title: `Sweep: ${w16(ctx)} probes (16 ports × a ${ctx.quick ? '/20' : '/16'})`, notes, columns: SWEEP_COLUMNS, baseline: 'halfopen', rows };
};

const w16 = (ctx: BenchContext) => (ctx.quick ? '65,536' : '1,048,576');

/** Memory stays flat at any size: 16,777,216 probes to an IPv6 /104 that drops everything (quick: 65,536). One run. */
export const sweep16m: Scenario = async (ctx) => {
  const prefix = ctx.quick ? '2001:2::/112' : '2001:2::/104';
  const probes = ctx.quick ? 65536 : 16777216;
  const rows: Row[] = [];
  await withFleet({ tag: 'bench', v6: prefix, open: [], drop: [prefix] }, async (fleet) => {
    const out = path.join(ctx.tmp, 'halfopen.ndjson');
    const t = timed(fleet, [process.execPath, MAIN, 'sweep', prefix, '-p', '80', '--rate', '0', '--retries', '0', '--timeout', '500', '--format', 'ndjson', '--no-progress'], out, ctx.tmp);
    stopIfInterrupted('halfopen', t.exit);
    const lines = Number(execFileSync('wc', ['-l', out], { encoding: 'utf8' }).trim().split(' ')[0]);
    fs.rmSync(out, { force: true });
    // Every probe must come back as filtered: a missing line is a missed verdict.
    const m = { wall: t.wall, probes, pps: probes / t.wall, missed: 0, falseOpen: 0, wrong: Math.abs(probes - lines), cpu: t.cpu, rssMb: t.rssMb, exit: t.exit };
    rows.push({ tool: 'halfopen', settings: '--rate 0 --retries 0 --timeout 500', runs: [m] });
    logRun(ctx, 'halfopen', m);
  });
  return {
    id: 'sweep16m',
    title: `Sweep: ${probes.toLocaleString('en-US')} probes to an IPv6 /${prefix.split('/')[1]} that drops everything`,
    notes: [
      'Memory at scale: the probe table is a fixed window that chunks stream through, so peak RSS stays flat whatever the sweep size. One run (it takes ~50 s); every probe must come back filtered.',
      'halfopen only: this scenario is about memory at scale, not a comparison.',
    ],
    columns: SWEEP_COLUMNS.filter((c) => c.key !== 'missed' && c.key !== 'falseOpen'),
    baseline: 'halfopen',
    rows,
  };
};
