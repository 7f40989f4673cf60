// node dist/bench/check.js [--runs N] [--port P]
// Whole-process time of one health check, as farmguardian pays it (one
// process per backend per interval): bare `node -e 0`, check_tcp_half_open,
// `halfopen check`, the nmap wrapper it replaces, and monitoring-plugins'
// check_tcp (a full connect). All run inside the prober namespace of a
// throwaway fleet against an open port, interleaved round-robin so drift hits
// every command alike. Prints a markdown table: median, p95, min per command,
// and halfopen − node.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../src/fleet/fleet';

const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'dist/src/cli/check-tcp-half-open.js');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');
const CHECK_TCP = '/usr/lib/nagios/plugins/check_tcp';
const HOST = '198.18.0.7';

interface Cmd { name: string; argv: string[]; expect: RegExp | null }
interface Measured { name: string; ms: number[]; failures: string[] }

const argv = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = argv.indexOf(name);
  const v = i >= 0 ? Number(argv[i + 1]) : def;
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} expects a positive whole number`);
  return v;
};

/** Inside the namespace: run every command `runs` times, round-robin, after one warm-up each. */
function inner(cmds: Cmd[], runs: number): Measured[] {
  const out = cmds.map((c) => ({ name: c.name, ms: [] as number[], failures: [] as string[] }));
  for (let round = -1; round < runs; round++) {
    cmds.forEach((c, i) => {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(c.argv[0], c.argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (round < 0) return; // warm-up: page cache, first exec
      out[i].ms.push(ms);
      const ok = r.status === 0 && (!c.expect || c.expect.test(r.stdout));
      if (!ok) out[i].failures.push(`exit ${r.status}: ${(r.stdout + r.stderr).trim().slice(0, 200)}`);
    });
  }
  return out;
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: number[]) => { const s = sorted(xs); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const p95 = (xs: number[]) => { const s = sorted(xs); return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)]; };
const f1 = (x: number) => x.toFixed(1);

function have(file: string): boolean {
  try { execFileSync('sh', ['-c', `command -v ${file}`], { stdio: 'ignore' }); return true; } catch { return false; }
}

/** nmap and check_tcp are the peers; install them from Debian when missing (root). */
function ensurePeers(): string[] {
  const want: string[] = [];
  if (!have('nmap')) want.push('nmap');
  if (!fs.existsSync(CHECK_TCP)) want.push('monitoring-plugins-basic');
  if (!want.length) return [];
  process.stderr.write(`bench: installing ${want.join(' ')} (apt-get)\n`);
  try {
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...want], {
      stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    return [];
  } catch (err) {
    return [`could not install ${want.join(', ')}: ${String((err as { stderr?: Buffer }).stderr ?? err).trim().split('\n').pop()}`];
  }
}

async function outer(): Promise<void> {
  const runs = opt('--runs', 20);
  const port = opt('--port', 80);
  if (process.getuid?.() !== 0) throw new Error('bench/check needs root (namespaces, raw sockets)');
  const notes = ensurePeers();
  const fleet = await Fleet.create({ tag: 'chkbench', v4: '198.18.0.0/24', open: [port] });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ho-bench-check-'));
  const EMPTY = path.join(tmp, 'empty.js');
  fs.writeFileSync(EMPTY, '');
  let results: Measured[];
  let native: { us: number[]; rttUs: number[] };
  const cmds: Cmd[] = [
    { name: '`node -e 0`', argv: [process.execPath, '-e', '0'], expect: null },
    // Running any file pays for the CommonJS loader, which -e 0 skips.
    { name: '`node empty.js`', argv: [process.execPath, EMPTY], expect: null },
    { name: '`check_tcp_half_open HOST P`', argv: [process.execPath, BIN, HOST, String(port)], expect: /^TCP OK - / },
    { name: '`halfopen check HOST P`', argv: [process.execPath, MAIN, 'check', HOST, String(port)], expect: /^TCP OK - / },
  ];
  if (have('nmap'))
    cmds.push({
      name: 'nmap wrapper (`nmap -n -sS -p P-(P+1) HOST -e IF \\| grep open \\| grep P`)',
      argv: ['sh', '-c', `nmap -n -sS -p ${port}-${port + 1} ${HOST} -e ${fleet.proberIf} | grep open | grep ${port}`],
      expect: null,
    });
  // What a per-call XDP design would pay: load, attach, one probe, detach.
  cmds.push({
    name: '`halfopen sweep HOST -p P` (XDP load + attach + detach per call)',
    argv: [process.execPath, MAIN, 'sweep', HOST, '-p', String(port), '--format', 'ndjson', '--timeout', '300', '--no-progress'],
    expect: /"state":"open"/,
  });
  if (fs.existsSync(CHECK_TCP)) cmds.push({ name: '`check_tcp -H HOST -p P` (full connect)', argv: [CHECK_TCP, '-H', HOST, '-p', String(port)], expect: /^TCP OK/ });
  try {
    const out = execFileSync('ip', ['netns', 'exec', fleet.prober, process.execPath, __filename, '--inner', JSON.stringify({ cmds: cmds.map((c) => ({ ...c, expect: c.expect?.source ?? null })), runs })], {
      encoding: 'utf8', maxBuffer: 64 << 20,
    });
    results = JSON.parse(out);
    native = JSON.parse(execFileSync('ip', ['netns', 'exec', fleet.prober, process.execPath, __filename, '--native', HOST, String(port), String(runs * 10)], { encoding: 'utf8' }));
    if (fleet.synRecvCount() !== 0) notes.push(`${fleet.synRecvCount()} SYN-RECV sockets left on the fleet`);
  } finally {
    fleet.remove();
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  const by = (prefix: string) => results.find((r) => r.name.startsWith(prefix));
  const lines = [
    `## halfopen check: whole-process time, ${runs} runs each, inside the prober namespace, open port`,
    '',
    '| command | median ms | p95 ms | min ms | failed runs |',
    '|---|---:|---:|---:|---:|',
    ...results.map((r) => `| ${r.name} | ${f1(median(r.ms))} | ${f1(p95(r.ms))} | ${f1(Math.min(...r.ms))} | ${r.failures.length} |`),
    '',
  ];
  const node = by('`node -e'), bin = by('`check_tcp_half_open'), main = by('`halfopen check'), nmap = by('nmap'), ctcp = by('`check_tcp ');
  if (node && bin) {
    const d = median(bin.ms) - median(node.ms), d95 = p95(bin.ms) - p95(node.ms);
    lines.push(`- check_tcp_half_open − node: median ${f1(d)} ms, p95 ${f1(d95)} ms (target: at most 20 ms) → ${d <= 20 ? 'met' : 'NOT met'}`);
  }
  if (node && main) lines.push(`- halfopen check − node: median ${f1(median(main.ms) - median(node.ms))} ms, p95 ${f1(p95(main.ms) - p95(node.ms))} ms`);
  if (bin && nmap) lines.push(`- nmap wrapper / check_tcp_half_open: ${(median(nmap.ms) / median(bin.ms)).toFixed(1)}× the median time → ${median(bin.ms) < median(nmap.ms) ? 'halfopen is faster' : 'halfopen is NOT faster'}`);
  if (bin && ctcp) lines.push(`- check_tcp (completes the handshake, the service logs a connection): median ${f1(median(ctcp.ms))} ms`);
  lines.push(`- the native check alone, in one process (${native.us.length} calls): median ${median(native.us).toFixed(0)} µs, p95 ${p95(native.us).toFixed(0)} µs per call, of which the round trip is ${median(native.rttUs).toFixed(0)} µs; the rest of a check_tcp_half_open run is Node starting`);
  for (const r of results) for (const f of r.failures.slice(0, 3)) lines.push(`- failure in ${r.name}: ${f}`);
  for (const n of notes) lines.push(`- note: ${n}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  if (results.some((r) => r.failures.length)) process.exitCode = 1;
}

/** Inside the namespace: n native checks in this one process (no process start-up). */
function nativeOnly(host: string, port: number, n: number): { us: number[]; rttUs: number[] } {
  const { native } = require('../src/native/addon') as typeof import('../src/native/addon');
  const addr = Buffer.from(host.split('.').map(Number));
  const us: number[] = [], rttUs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const r = native.check({ family: 4, addr, port, timeoutMs: 2000 });
    us.push(Number(process.hrtime.bigint() - t0) / 1e3);
    if (r.state !== 'open' || r.rttNs === null) throw new Error(`native check: ${JSON.stringify(r)}`);
    rttUs.push(r.rttNs / 1e3);
  }
  return { us, rttUs };
}

if (argv[0] === '--native') {
  process.stdout.write(JSON.stringify(nativeOnly(argv[1], Number(argv[2]), Number(argv[3]))));
} else if (argv[0] === '--inner') {
  const spec = JSON.parse(argv[1]) as { cmds: Array<Omit<Cmd, 'expect'> & { expect: string | null }>; runs: number };
  const cmds = spec.cmds.map((c) => ({ ...c, expect: c.expect === null ? null : new RegExp(c.expect) }));
  process.stdout.write(JSON.stringify(inner(cmds, spec.runs)));
} else {
  outer().catch((err) => {
    process.stderr.write(`bench/check: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}
