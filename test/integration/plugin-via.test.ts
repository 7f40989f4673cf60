// farmguardian through the daemon: check_tcp_half_open --via SOCKET HOST PORT
// run by farmguardian's loop shape (Perl backticks through /bin/sh under
// alarm, `MARK=… LD_PRELOAD=…` in front, exit 0 = up) over 200 backends of a
// real fleet, 10 of them silent (nftables drop). Through --via the verdicts
// agree with serve's /backends and, line for line once measured times are
// normalised, with a live check's; a silent backend costs no timeout. The same
// from an empty backend list with plugin.learn; learning refused outside
// plugin.allow and beyond plugin.max_learned (UNKNOWN, one line); the socket
// absent, serve hung and serve killed mid-run: the plugin checks live and says
// so on stderr only.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../../src/fleet/fleet';
import { farmguardianLoop, LoopCheck } from '../../src/fleet/farmguardian-loop';
import { netnsSkipReason } from '../helpers/privileges';
import { MAIN, ROOT } from '../helpers/cli';
import { ServeProcess, waitFor } from '../helpers/serve';

const NATIVE = path.join(ROOT, 'native/plugin/build/check_tcp_half_open');
const skip = netnsSkipReason() || (!fs.existsSync(NATIVE) && `${NATIVE} is not built (bash scripts/build.sh)`) || (spawnSync('perl', ['-MTime::HiRes', '-e', '1']).status !== 0 && 'perl with Time::HiRes is not installed (scripts/setup.sh installs perl)');
/** Any harmless shared object, as SKUDONET preloads its mark.so: the plugin's raw syscalls must not mind. */
const PRELOAD = ['/lib/x86_64-linux-gnu/libm.so.6', '/usr/lib/x86_64-linux-gnu/libm.so.6'].find((f) => fs.existsSync(f)) ?? '';
const HTTP = 9380;

interface Target { host: string; port: number; truth: 'up' | 'down' }
/** 200 backends: 185 open, 5 closed (RST), 10 silent (dropped: 198.18.0.200-209). */
const TARGETS: Target[] = [
  ...Array.from({ length: 185 }, (_, i) => ({ host: `198.18.0.${i + 1}`, port: 80, truth: 'up' as const })),
  ...Array.from({ length: 5 }, (_, i) => ({ host: `198.18.0.${186 + i}`, port: 81, truth: 'down' as const })),
  ...Array.from({ length: 10 }, (_, i) => ({ host: `198.18.0.${200 + i}`, port: 80, truth: 'down' as const })),
];
const SILENT = (t: Target) => Number(t.host.split('.')[3]) >= 200;
const DEFAULTS = 'defaults: { interval: 1s, timeout: 500ms, rise: 2, fall: 2, jitter: 0 }';

/** The check's line with what is measured (times, RTTs, timestamps) replaced: --via and live compare equal. */
const normalize = (line: string) => line
  .replace(/\d+\.\d{6}(?= second response time)/g, 'T')
  .replace(/\|time=\d+\.\d{6}s;/g, '|time=Ts;')
  .replace(/ in \d+\.\d{3} seconds/g, ' in T seconds')
  .replace(/"rtt_ms":\d+(\.\d+)?/g, '"rtt_ms":N')
  .replace(/"ts":"[^"]+"/g, '"ts":"TS"');

/** farmguardian's command; the socket path must hold neither HOST nor PORT (farmguardian substitutes them). */
const viaCommand = (sock: string, extra = '') => `MARK=0x200 LD_PRELOAD=${PRELOAD} ${NATIVE} --via ${sock} -t 1${extra} HOST PORT`;
const liveCommand = `MARK=0x200 LD_PRELOAD=${PRELOAD} ${NATIVE} -t 1 HOST PORT`;

function tmpDir(): string {
  for (;;) {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-via-'));
    if (!/HOST|PORT/.test(d)) return d;
    fs.rmSync(d, { recursive: true, force: true });
  }
}

/** Runs the plugin once inside the prober namespace. */
function plugin(fleet: Fleet, args: string[], node = false): { code: number | null; stdout: string; stderr: string; ms: number } {
  const cmd = node ? [process.execPath, MAIN, 'check'] : [NATIVE];
  const t = process.hrtime.bigint();
  const r = spawnSync(fleet.proberArgv()[0], [...fleet.proberArgv().slice(1), ...cmd, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Number(process.hrtime.bigint() - t) / 1e6 };
}

function byTarget(checks: LoopCheck[], round = 1): Map<string, LoopCheck> {
  return new Map(checks.filter((c) => c.round === round).map((c) => [`${TARGETS[c.i].host}:${TARGETS[c.i].port}`, c]));
}

/** serve's reported state per host:port, from /backends. */
function serveStates(serve: ServeProcess): Map<string, string> {
  return new Map((serve.json(HTTP, '/backends') as Array<{ address: string; port: number; state: string }>).map((b) => [`${b.address}:${b.port}`, b.state]));
}

/** Every --via verdict: exit 0 exactly for the up ones, as serve reports them and as the fleet is. */
function assertAgree(checks: LoopCheck[], states: Map<string, string>, round = 1): void {
  const got = byTarget(checks, round);
  assert.equal(got.size, TARGETS.length);
  for (const t of TARGETS) {
    const c = got.get(`${t.host}:${t.port}`)!;
    const what = `${t.host}:${t.port}: exit ${c.code}: ${c.line}`;
    assert.equal(c.code === 0 ? 'up' : 'down', t.truth, what);
    assert.equal(states.get(`${t.host}:${t.port}`), t.truth, `serve's /backends for ${what}`);
    assert.equal(c.code, t.truth === 'up' ? 0 : 2, what);
  }
}

describe('check_tcp_half_open --via: farmguardian through the daemon', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  let serve: ServeProcess | null = null;
  let sock: string;
  let live: Map<string, LoopCheck>;

  before(async () => {
    fleet = await Fleet.create({ tag: 'via', v4: '198.18.0.0/24', open: [80], drop: ['198.18.0.200/29', '198.18.0.208/31'] });
    dir = tmpDir();
    sock = path.join(dir, 'plugin.sock');
    // What a live check prints for each, through the same loop: the reference for every --via line.
    const r = await farmguardianLoop(fleet, { template: liveCommand, backends: TARGETS });
    live = byTarget(r.checks);
  });

  after(async () => {
    await serve?.stop();
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function startServe(config: string, wantUp: number): Promise<ServeProcess> {
    fs.writeFileSync(path.join(dir, 'serve.yaml'), config);
    const s = new ServeProcess(fleet, path.join(dir, 'serve.yaml'));
    await s.ready();
    if (wantUp >= 0) {
      // Settled: every backend checked, the silent ones down after fall.
      await waitFor(() => {
        const list = s.json(HTTP, '/backends') as Array<{ state: string; counters: { checks: number } }>;
        return list.filter((b) => b.state === 'up').length === wantUp && list.every((b) => b.counters.checks >= 2);
      }, 15_000);
    }
    return s;
  }

  /** Each --via line equals the live check's, measured values aside. */
  function assertLikeLive(checks: LoopCheck[], round = 1): void {
    for (const [key, c] of byTarget(checks, round)) {
      const l = live.get(key)!;
      assert.equal(c.code, l.code, `${key}: --via exit ${c.code}, live ${l.code}`);
      assert.equal(normalize(c.line), normalize(l.line), key);
    }
  }

  test('live checks through the loop are right (the reference)', () => {
    for (const t of TARGETS) assert.equal(live.get(`${t.host}:${t.port}`)!.code === 0 ? 'up' : 'down', t.truth, `${t.host}:${t.port}`);
  });

  test('configured backends: 200 --via checks agree with /backends and with live checks, and no silent one waits its timeout', async () => {
    serve = await startServe(`${DEFAULTS}
listen: { http: "127.0.0.1:${HTTP}", plugin: ${sock} }
probe: { interface: ${fleet.proberIf} }
backends:
${TARGETS.map((t) => `  - { host: ${t.host}, port: ${t.port} }`).join('\n')}
`, 185);
    assert.match(serve.stderr, new RegExp(`plugin on ${sock.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    const st = fs.statSync(sock);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o660, 'root and the halfopen group only');
    const group = /^halfopen:[^:]*:(\d+):/m.exec(fs.readFileSync('/etc/group', 'utf8'));
    assert.equal(st.gid, group ? Number(group[1]) : 0);

    const r = await farmguardianLoop(fleet, { template: viaCommand(sock), backends: TARGETS, rounds: 2 });
    assert.equal(r.stderr, '', 'serve answered every check: no live fallback');
    const states = serveStates(serve);
    for (const round of [1, 2]) {
      assertAgree(r.checks, states, round);
      assertLikeLive(r.checks, round);
    }
    for (const c of r.checks.filter((x) => SILENT(TARGETS[x.i])))
      assert.ok(c.ms < 500, `silent ${TARGETS[c.i].host} answered from serve's state in ${c.ms} ms, not after the 1 s timeout`);
    // `halfopen check --via` is the same program.
    for (const t of [TARGETS[0], TARGETS[186], TARGETS[195]]) {
      const a = plugin(fleet, ['--via', sock, '-t', '1', t.host, String(t.port)]);
      const b = plugin(fleet, ['--via', sock, '-t', '1', t.host, String(t.port)], true);
      assert.equal(b.code, a.code);
      assert.equal(normalize(b.stdout), normalize(a.stdout));
      assert.equal(b.stderr, '');
    }
    // -w/-c and --json are the plugin's, applied to serve's verdict.
    const j = plugin(fleet, ['--via', sock, '--json', '-t', '1', '198.18.0.205', '80']);
    assert.equal(j.code, 2);
    assert.match(j.stdout, /^\{"ip":"198\.18\.0\.205","port":80,"state":"filtered","reason":"no-response","rtt_ms":null,"ttl":null,"ts":"[^"]+"\}\n$/);
    const w = plugin(fleet, ['--via', sock, '-w', '0', '-c', '10', '198.18.0.7', '80']);
    assert.equal(w.code, 1);
    assert.match(w.stdout, /^TCP WARNING - \d+\.\d{6} second response time on 198\.18\.0\.7 port 80\|time=\d+\.\d{6}s;0\.000000;10\.000000;0\.000000;5\.000000\n$/);
  });

  test('socket absent: a live check, the same stdout line, a note on stderr only', () => {
    for (const t of [TARGETS[3], TARGETS[187], TARGETS[199]]) {
      const r = plugin(fleet, ['--via', path.join(dir, 'absent.sock'), '-t', '1', t.host, String(t.port)]);
      const l = live.get(`${t.host}:${t.port}`)!;
      assert.equal(r.code, l.code);
      assert.equal(normalize(r.stdout), normalize(l.line) + '\n');
      assert.equal(r.stderr, `check_tcp_half_open: --via ${path.join(dir, 'absent.sock')}: cannot connect: ENOENT; checking live\n`);
    }
  });

  test('serve hung, then killed, mid-run: the loop goes on with live checks and right verdicts', async () => {
    assert.ok(serve, 'serve from the test before');
    const s = serve!;
    const r = await farmguardianLoop(fleet, {
      template: `${viaCommand(sock)} 2>>${path.join(dir, 'fallback.log')}`, backends: TARGETS,
      onCheck: (c) => {
        if (c.i === 60) s.signal('SIGSTOP'); // accepts nothing: the plugin waits 100 ms, then checks live
        if (c.i === 120) s.signal('SIGKILL'); // gone, its socket file left: refused at once
      },
    });
    s.signal('SIGCONT');
    await s.wait();
    serve = null;
    const got = byTarget(r.checks);
    for (const t of TARGETS) assert.equal(got.get(`${t.host}:${t.port}`)!.code === 0 ? 'up' : 'down', t.truth, `${t.host}:${t.port}`);
    assertLikeLive(r.checks);
    const notes = fs.readFileSync(path.join(dir, 'fallback.log'), 'utf8').split('\n').filter(Boolean);
    const hung = notes.filter((n) => /: no answer within 100 ms; checking live$/.test(n)).length;
    const dead = notes.filter((n) => /: cannot connect: ECONNREFUSED; checking live$/.test(n)).length;
    assert.ok(hung >= 50 && dead >= 70, `hung ${hung}, refused ${dead}: ${notes.slice(0, 3).join(' | ')}`);
    // The check in flight when serve died may see its connection dropped instead.
    const cut = notes.filter((n) => /: (serve closed the connection without an answer|read: ECONNRESET); checking live$/.test(n)).length;
    assert.ok(cut <= 1, `${cut} cut`);
    assert.equal(hung + dead + cut, notes.length, notes.filter((n) => !/(no answer within 100 ms|ECONNREFUSED); checking live$/.test(n)).join(' | '));
    for (const c of r.checks.filter((x) => x.i > 62 && x.i < 118 && !SILENT(TARGETS[x.i]))) assert.ok(c.ms < 1000, `${c.i}: ${c.ms} ms`);
  });

  test('plugin.learn from an empty backend list: verdicts as configured ones; refused outside allow and beyond max_learned; kept over SIGHUP; forgotten', async () => {
    fs.rmSync(sock, { force: true }); // the killed serve's socket file (a new serve would replace it too)
    const config = (forget: string) => `${DEFAULTS}
listen: { http: "127.0.0.1:${HTTP}", plugin: ${sock} }
probe: { interface: ${fleet.proberIf} }
plugin: { learn: true, allow: [198.18.0.0/24], max_learned: 200, forget_after: ${forget} }
backends: []
`;
    serve = await startServe(config('10m'), -1);
    assert.match(serve.stderr, /checking 0 backends/);
    const r = await farmguardianLoop(fleet, { template: viaCommand(sock), backends: TARGETS, rounds: 2 });
    assert.equal(r.stderr, '');
    // Learned in round 1 (answered after each one's first check), from state in round 2.
    const states = serveStates(serve);
    assert.equal(states.size, 200);
    for (const round of [1, 2]) {
      assertAgree(r.checks, states, round);
      assertLikeLive(r.checks, round);
    }
    for (const c of r.checks.filter((x) => SILENT(TARGETS[x.i]) && x.round === 2)) assert.ok(c.ms < 500, `${c.i}: ${c.ms} ms`);

    const outside = plugin(fleet, ['--via', sock, '-t', '1', '198.18.1.5', '80']);
    assert.deepEqual([outside.code, outside.stdout, outside.stderr], [3, 'TCP UNKNOWN - not learning 198.18.1.5 port 80: 198.18.1.5 is not inside plugin.allow\n', '']);
    const beyond = plugin(fleet, ['--via', sock, '-t', '1', '198.18.0.250', '80']);
    assert.deepEqual([beyond.code, beyond.stdout, beyond.stderr], [3, 'TCP UNKNOWN - not learning 198.18.0.250 port 80: plugin.max_learned (200) backends are learned already\n', '']);
    const json = plugin(fleet, ['--via', sock, '--json', '198.18.0.250', '80']);
    assert.equal(json.code, 3);
    assert.deepEqual(JSON.parse(json.stdout), { ip: null, port: 80, state: 'unknown', reason: 'E_REFUSED', error: 'not learning 198.18.0.250 port 80: plugin.max_learned (200) backends are learned already' });

    // A reload keeps them (their state with them); a shorter forget_after then drops them all, unasked.
    const checksBefore = (serve.json(HTTP, '/backends') as Array<{ counters: { checks: number } }>).reduce((n, b) => n + b.counters.checks, 0);
    serve.signal('SIGHUP');
    assert.ok(await waitFor(() => /reloaded .*: \d+ backends/.test(serve!.stderr), 10_000), serve.stderr.slice(-600));
    const after = serve.json(HTTP, '/backends') as Array<{ state: string; counters: { checks: number } }>;
    assert.equal(after.length, 200);
    assert.ok(after.reduce((n, b) => n + b.counters.checks, 0) >= checksBefore, 'counters kept');
    const again = plugin(fleet, ['--via', sock, '-t', '1', '198.18.0.9', '80']);
    assert.equal(again.code, 0);
    fs.writeFileSync(path.join(dir, 'serve.yaml'), config('1s'));
    serve.signal('SIGHUP');
    assert.ok(await waitFor(() => (serve!.stderr.match(/reloaded .*: \d+ backends/g) ?? []).length === 2, 10_000), serve.stderr.slice(-600));
    assert.ok(await waitFor(() => (serve!.json(HTTP, '/backends') as unknown[]).length === 0, 15_000), 'all forgotten within 15 s');
    // Room again: learning goes on.
    const relearn = plugin(fleet, ['--via', sock, '-t', '1', '198.18.0.250', '80']);
    assert.equal(relearn.code, 0, `${relearn.stdout} ${serve.stderr.slice(-600)}`);
    assert.equal(await serve.stop(), 0);
    serve = null;
    assert.ok(!fs.existsSync(sock), 'serve removes its socket when it stops');
  });
});
