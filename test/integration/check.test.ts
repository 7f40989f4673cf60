// `halfopen check` / check_tcp_half_open against a namespace fleet: a real
// Postfix proves that a half-open check never reaches the application (no
// "connect from" in its log) where a plain connect check always does; then
// every verdict, the deadline, the retry, hostnames, usage and privilege
// errors, MARK, an LD_PRELOAD shim, and that nothing is left behind.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet, FleetSpec } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import { collect, CliResult, MAIN, ROOT } from '../helpers/cli';
import { PostfixInstance, postfixSkipReason } from '../helpers/postfix';

const skip = netnsSkipReason();
const BIN = path.join(ROOT, 'dist/src/cli/check-tcp-half-open.js');
const USAGE_LINE = /^Usage: check_tcp_half_open HOST PORT \| check_tcp_half_open -H HOST -p PORT \[-t SECONDS\] \[-4\|-6\] \[--json\]$/;

const SPEC: FleetSpec = {
  tag: 'check',
  v4: '198.18.0.0/24',
  v6: '2001:2::/120',
  open: [80],
  drop: ['198.18.0.128/28', '2001:2::80/124'],
  reject: ['198.18.0.144/28', '2001:2::90/124'],
};
const SMTP = '198.18.0.25';

interface RunOpts { env?: Record<string, string>; wrap?: string[]; entry?: 'bin' | 'main'; node?: string[]; timeoutMs?: number }
interface Timed extends CliResult { ms: number }

/** Runs check_tcp_half_open (or `halfopen check`) in the prober namespace; times the whole process. */
async function check(fleet: Fleet, args: string[], o: RunOpts = {}): Promise<Timed> {
  const entry = o.entry === 'main' ? [MAIN, 'check'] : [BIN];
  const argv = [...fleet.proberArgv(), ...(o.wrap ?? []), process.execPath, ...(o.node ?? []), ...entry, ...args];
  const t0 = process.hrtime.bigint();
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT, env: { ...process.env, ...o.env } });
  const r = await collect(child, o.timeoutMs ?? 30_000);
  return { ...r, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

const OK_LINE = (ip: string, port: number, t = '5.000000') =>
  new RegExp(`^TCP OK - (\\d+\\.\\d{6}) second response time on ${ip.replace(/\./g, '\\.')} port ${port}\\|time=\\1s;;;0\\.000000;${t.replace('.', '\\.')}\\n$`);

function nftCounter(fleet: Fleet, ns: 'prober' | 'fleet', table: string, name: string): number {
  const j = JSON.parse(fleet.exec(ns, 'nft', ['-j', 'list', 'counter', 'inet', table, name]));
  return (j.nftables as Array<{ counter?: { packets: number } }>).find((x) => x.counter)!.counter!.packets;
}

function nft(fleet: Fleet, ns: 'prober' | 'fleet', ruleset: string): void {
  execFileSync('ip', ['netns', 'exec', ns === 'prober' ? fleet.prober : fleet.fleet, 'nft', '-f', '-'], { input: ruleset });
}

import { setTimeout as sleep } from 'node:timers/promises';

/** N plain TCP connects (what nc -z or check_tcp do), one after another, from the prober namespace. */
function plainConnects(fleet: Fleet, host: string, port: number, n: number): string {
  const script = `const net=require('net');let i=0;const next=()=>{if(i++>=${n})return;` +
    `const s=net.connect(${port},'${host}',()=>{s.destroy();next();});s.on('error',(e)=>{console.error(e.message);process.exit(1);});};next();`;
  return execFileSync('ip', ['netns', 'exec', fleet.prober, process.execPath, '-e', script], { encoding: 'utf8' });
}

describe('check: half-open against a real Postfix', { skip: skip || postfixSkipReason() }, () => {
  let fleet: Fleet;
  let postfix: PostfixInstance | undefined;
  before(async () => {
    fleet = await Fleet.create({ ...SPEC, tag: 'chkpf' });
    postfix = await PostfixInstance.start(fleet, SMTP, 25);
  });
  after(async () => {
    try { await postfix?.stop(); } finally { fleet?.remove(); }
  });

  test('N checks report OK and Postfix logs no connection; N plain connects log N', async () => {
    const N = 10;
    for (let i = 0; i < N; i++) {
      // Both entry points: check_tcp_half_open HOST PORT and halfopen check -H HOST -p PORT.
      const r = i % 2 ? await check(fleet, ['-H', SMTP, '-p', '25'], { entry: 'main' }) : await check(fleet, [SMTP, '25']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, OK_LINE(SMTP, 25));
      assert.equal(r.stderr, '');
    }
    await sleep(500); // postlogd writes asynchronously
    assert.deepEqual(postfix!.connects(), [], 'no "connect from" after half-open checks');
    assert.equal(fleet.synRecvCount(), 0, 'no SYN-RECV left on the server');

    plainConnects(fleet, SMTP, 25, N);
    assert.equal(await postfix!.waitForConnects(N), N);
    await sleep(300);
    const lines = postfix!.connects();
    assert.equal(lines.length, N, lines.join('\n'));
    for (const l of lines) assert.match(l, /connect from unknown\[198\.19\.255\.1\]/);
    assert.equal(fleet.synRecvCount(), 0);
  });
});

describe('check verdicts against a namespace fleet', { skip }, () => {
  let fleet: Fleet;
  const etcNetns = () => path.join('/etc/netns', fleet.prober);
  before(async () => {
    fleet = await Fleet.create(SPEC);
    // `ip netns exec` bind-mounts /etc/netns/NAME/* over /etc: the prober gets
    // its own hosts file, and a resolver on its own loopback (nothing leaves).
    fs.mkdirSync(etcNetns(), { recursive: true });
    fs.writeFileSync(path.join(etcNetns(), 'hosts'),
      '127.0.0.1 localhost\n198.18.0.8 backend.halfopen.test\n2001:2::8 backend.halfopen.test\n198.18.0.9 v4only.halfopen.test\n');
    fs.writeFileSync(path.join(etcNetns(), 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
  });
  after(() => {
    try { if (fleet) fs.rmSync(etcNetns(), { recursive: true, force: true }); } finally { fleet?.remove(); }
  });

  test('open IPv4 → 0 OK with the response time and perfdata', async () => {
    const r = await check(fleet, ['198.18.0.7', '80']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, OK_LINE('198.18.0.7', 80));
    const rtt = Number(OK_LINE('198.18.0.7', 80).exec(r.stdout)![1]);
    assert.ok(rtt > 0 && rtt < 0.1, `rtt ${rtt}`);
  });

  test('open IPv6 → 0; closed IPv6 → 2', async () => {
    const r = await check(fleet, ['-H', '2001:2::7', '-p', '80']);
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout, OK_LINE('2001:2::7', 80));
    const c = await check(fleet, ['2001:2::7', '81']);
    assert.equal(c.code, 2, c.stdout);
    assert.match(c.stdout, /^TCP CRITICAL - Connection refused \(RST\) on 2001:2::7 port 81\|time=\d+\.\d{6}s;;;0\.000000;5\.000000\n$/);
  });

  test('closed (RST) → 2 CRITICAL, at once', async () => {
    const r = await check(fleet, ['198.18.0.7', '81']);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /^TCP CRITICAL - Connection refused \(RST\) on 198\.18\.0\.7 port 81\|time=\d+\.\d{6}s;;;0\.000000;5\.000000\n$/);
    assert.ok(r.ms < 1000, `${r.ms} ms`);
  });

  test('dropped → 2 CRITICAL after the deadline, having resent the SYN', async () => {
    const r = await check(fleet, ['-H', '198.18.0.130', '-p', '80', '-t', '1']);
    assert.equal(r.code, 2);
    // SYNs at 0, 0.2 and 0.6 s; the next would be at 1.4 s, past the deadline.
    assert.match(r.stdout, /^TCP CRITICAL - No response \(filtered\) on 198\.18\.0\.130 port 80: 3 SYNs in 1\.0\d\d seconds\|time=1\.0\d{5}s;;;0\.000000;1\.000000\n$/);
    assert.ok(r.ms >= 1000 && r.ms < 2500, `whole process ${r.ms} ms for -t 1`);
    const v6 = await check(fleet, ['2001:2::81', '80', '-t', '0.5', '--json']);
    assert.equal(v6.code, 2);
    const j = JSON.parse(v6.stdout);
    assert.deepEqual({ ...j, ts: undefined }, { ip: '2001:2::81', port: 80, state: 'filtered', reason: 'no-response', rtt_ms: null, ttl: null, ts: undefined });
  });

  test('ICMP-rejected → 2 CRITICAL naming the ICMP type and code (IPv4 and IPv6)', async () => {
    const r = await check(fleet, ['198.18.0.150', '80']);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /^TCP CRITICAL - Host unreachable \(ICMP type 3 code 1 from 198\.18\.0\.150\) on 198\.18\.0\.150 port 80\|time=/);
    const v6 = await check(fleet, ['2001:2::95', '80', '--json']);
    assert.equal(v6.code, 2);
    const j = JSON.parse(v6.stdout);
    assert.equal(j.state, 'unreachable');
    assert.equal(j.reason, 'icmp-1-3');
    assert.equal(typeof j.rtt_ms, 'number');
  });

  test('--json: one object with the sweep record fields', async () => {
    const r = await check(fleet, ['198.18.0.7', '80', '--json']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim().split('\n').length, 1);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(j), ['ip', 'port', 'state', 'reason', 'rtt_ms', 'ttl', 'ts']);
    assert.equal(j.ip, '198.18.0.7');
    assert.equal(j.state, 'open');
    assert.equal(j.reason, 'syn-ack');
    assert.equal(j.ttl, 64);
    assert.ok(j.rtt_ms > 0 && j.rtt_ms < 100);
    assert.ok(Math.abs(Date.parse(j.ts) - Date.now()) < 60_000);
  });

  test('hostnames: resolved in the namespace, -4/-6 pick the family, unknown names → 2', async () => {
    const v6 = await check(fleet, ['-6', 'backend.halfopen.test', '80']);
    assert.equal(v6.code, 0, v6.stdout);
    assert.match(v6.stdout, /^TCP OK - .* on backend\.halfopen\.test \(2001:2::8\) port 80\|/);
    const v4 = await check(fleet, ['-H', 'backend.halfopen.test', '-p', '81', '-4']);
    assert.equal(v4.code, 2);
    assert.match(v4.stdout, /^TCP CRITICAL - Connection refused \(RST\) on backend\.halfopen\.test \(198\.18\.0\.8\) port 81\|/);
    const only4 = await check(fleet, ['v4only.halfopen.test', '80']);
    assert.equal(only4.code, 0, only4.stdout);
    assert.match(only4.stdout, /\(198\.18\.0\.9\) port 80/);
    const none = await check(fleet, ['nosuch.halfopen.test', '80', '-t', '3']);
    assert.equal(none.code, 2, none.stdout);
    assert.match(none.stdout, /^TCP CRITICAL - cannot resolve "nosuch\.halfopen\.test": \w+\|time=/);
  });

  test('a lost first SYN is resent within the deadline → 0, with the RTT of the SYN that got through', async () => {
    // The fleet drops the first SYN to 198.18.0.11:80 (a 50-byte quota holds one 44-byte SYN).
    nft(fleet, 'fleet', 'table inet ho_check_drop_once {\n chain input {\n  type filter hook input priority -10;\n' +
      '  ip daddr 198.18.0.11 tcp dport 80 tcp flags syn quota until 50 bytes drop\n }\n}\n');
    try {
      const r = await check(fleet, ['198.18.0.11', '80', '--json']);
      assert.equal(r.code, 0, r.stdout);
      const j = JSON.parse(r.stdout);
      assert.equal(j.state, 'open');
      assert.ok(j.rtt_ms < 100, `rtt ${j.rtt_ms} ms is the retry's, not measured from the lost SYN`);
      assert.ok(r.ms >= 200, `the retry went out after 200 ms (${r.ms} ms)`);
      const used = fleet.exec('fleet', 'nft', ['list', 'table', 'inet', 'ho_check_drop_once']);
      assert.match(used, /quota 50 bytes used (44|50) bytes/, 'the first SYN was dropped');
    } finally {
      fleet.exec('fleet', 'nft', ['delete', 'table', 'inet', 'ho_check_drop_once']);
    }
  });

  test('a local firewall that drops the SYN on output → 2 CRITICAL at once, saying so', async () => {
    nft(fleet, 'prober', 'table inet ho_check_out_drop {\n chain out {\n  type filter hook output priority 0; policy accept;\n' +
      '  ip daddr 198.18.0.12 tcp flags syn drop\n }\n}\n');
    try {
      const r = await check(fleet, ['198.18.0.12', '80']);
      assert.equal(r.code, 2, r.stdout);
      assert.match(r.stdout, /^TCP CRITICAL - SYN dropped by a local firewall rule \(EPERM\) on 198\.18\.0\.12 port 80\|/);
      assert.ok(r.ms < 2000, `${r.ms} ms`);
    } finally {
      fleet.exec('prober', 'nft', ['delete', 'table', 'inet', 'ho_check_out_drop']);
    }
  });

  test('bad arguments → 3 UNKNOWN with a usage line', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /missing HOST/],
      [['198.18.0.7'], /missing PORT/],
      [['198.18.0.7', '0'], /invalid port "0"/],
      [['-H', '198.18.0.7', '-p', 'http'], /invalid port "http"/],
      [['198.18.0.7', '80', '-t', 'x'], /invalid timeout "x"/],
      [['--frobnicate', '198.18.0.7', '80'], /unknown option "--frobnicate"/],
      [['-6', '198.18.0.7', '80'], /IPv4 address but -6/],
    ];
    for (const [argv, re] of cases) {
      for (const entry of ['bin', 'main'] as const) {
        const r = await check(fleet, argv, { entry });
        assert.equal(r.code, 3, `${argv.join(' ')}: ${r.stdout}${r.stderr}`);
        const lines = r.stdout.trimEnd().split('\n');
        assert.equal(lines.length, 2, r.stdout);
        assert.match(lines[0], /^TCP UNKNOWN - /);
        assert.match(lines[0], re);
        assert.match(lines[1], USAGE_LINE);
      }
    }
  });

  test('not root → 3 UNKNOWN naming CAP_NET_RAW', async () => {
    for (const entry of ['bin', 'main'] as const) {
      const r = await check(fleet, ['198.18.0.7', '80'], { entry, wrap: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] });
      assert.equal(r.code, 3, r.stdout + r.stderr);
      assert.match(r.stdout, /^TCP UNKNOWN - the half-open check needs CAP_NET_RAW/);
      assert.equal(r.stdout.trim().split('\n').length, 1);
    }
  });

  test('MARK marks the SYNs (decimal and 0x hex, IPv4 and IPv6); no MARK, no mark', async () => {
    nft(fleet, 'prober', 'table inet ho_check_mark {\n counter marked {}\n counter syns {}\n chain out {\n' +
      '  type filter hook output priority 0; policy accept;\n  tcp flags syn counter name syns\n  meta mark 0x2a tcp flags syn counter name marked\n }\n}\n');
    try {
      assert.equal((await check(fleet, ['198.18.0.7', '80'])).code, 0);
      assert.equal(nftCounter(fleet, 'prober', 'ho_check_mark', 'marked'), 0);
      assert.equal(nftCounter(fleet, 'prober', 'ho_check_mark', 'syns'), 1);
      assert.equal((await check(fleet, ['198.18.0.7', '80'], { env: { MARK: '42' } })).code, 0);
      assert.equal((await check(fleet, ['2001:2::7', '80'], { env: { MARK: '0x2a' } })).code, 0);
      assert.equal(nftCounter(fleet, 'prober', 'ho_check_mark', 'marked'), 2);
      assert.equal(nftCounter(fleet, 'prober', 'ho_check_mark', 'syns'), 3);
      const bad = await check(fleet, ['198.18.0.7', '80'], { env: { MARK: 'mark' } });
      assert.equal(bad.code, 3);
      assert.match(bad.stdout, /^TCP UNKNOWN - invalid MARK "mark" in the environment/);
    } finally {
      fleet.exec('prober', 'nft', ['delete', 'table', 'inet', 'ho_check_mark']);
    }
  });

  test('an LD_PRELOAD shim that breaks socket calls does not break the check', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ho-shim-'));
    try {
      // Every socket call it wraps fails with EACCES and is logged (getsockname: internet sockets only).
      const src = path.join(dir, 'shim.c'), so = path.join(dir, 'shim.so'), log = path.join(dir, 'log');
      fs.writeFileSync(src, `#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
static void note(const char *what) {
  const char *p = getenv("SHIM_LOG");
  int fd = p ? open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
  if (fd < 0) return;
  if (write(fd, what, strlen(what)) < 0 || write(fd, "\\n", 1) < 0) {}
  close(fd);
}
#define DENY(what) do { note(what); errno = EACCES; return -1; } while (0)
__attribute__((constructor)) static void loaded(void) { note("loaded"); }
int socket(int d, int t, int p) { (void)d; (void)t; (void)p; DENY("socket"); }
int setsockopt(int f, int l, int n, const void *v, socklen_t s) { (void)f; (void)l; (void)n; (void)v; (void)s; DENY("setsockopt"); }
int connect(int f, const struct sockaddr *a, socklen_t l) { (void)f; (void)a; (void)l; DENY("connect"); }
/* libuv asks getsockname() about stdio socketpairs: let AF_UNIX through, deny internet sockets. */
int getsockname(int f, struct sockaddr *a, socklen_t *l) {
  long r = syscall(SYS_getsockname, f, a, l);
  if (r == 0 && (a->sa_family == AF_INET || a->sa_family == AF_INET6)) DENY("getsockname");
  return (int)r;
}
ssize_t sendto(int f, const void *b, size_t n, int x, const struct sockaddr *a, socklen_t l) { (void)f; (void)b; (void)n; (void)x; (void)a; (void)l; DENY("sendto"); }
ssize_t recvmsg(int f, struct msghdr *m, int x) { (void)f; (void)m; (void)x; DENY("recvmsg"); }
ssize_t recvfrom(int f, void *b, size_t n, int x, struct sockaddr *a, socklen_t *l) { (void)f; (void)b; (void)n; (void)x; (void)a; (void)l; DENY("recvfrom"); }
int poll(struct pollfd *p, nfds_t n, int t) { (void)p; (void)n; (void)t; DENY("poll"); }
`);
      const cc = ['cc', 'gcc', 'clang'].find((c) => { try { execFileSync(c, ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } });
      assert.ok(cc, 'a C compiler (setup installs clang)');
      execFileSync(cc!, ['-shared', '-fPIC', '-O2', '-o', so, src]);
      // Preloaded into node only (inside the namespace), not into ip(8).
      const wrap = ['env', `LD_PRELOAD=${so}`, `SHIM_LOG=${log}`];
      // The shim works: an ordinary connect from node fails through it.
      const probe = spawn('ip', ['netns', 'exec', fleet.prober, ...wrap, process.execPath, '-e',
        "require('net').connect(80,'198.18.0.7').on('connect',()=>process.exit(0)).on('error',(e)=>{console.log(e.code);process.exit(1)})"],
      { stdio: ['ignore', 'pipe', 'pipe'] });
      const p = await collect(probe, 10_000);
      assert.notEqual(p.code, 0, 'the shim breaks ordinary sockets');
      assert.match(fs.readFileSync(log, 'utf8'), /^socket$/m);
      fs.rmSync(log);
      for (const args of [['198.18.0.7', '80'], ['2001:2::7', '80'], ['198.18.0.7', '81']]) {
        const r = await check(fleet, args, { wrap });
        assert.equal(r.code, args[1] === '80' ? 0 : 2, r.stdout + r.stderr);
      }
      const r = await check(fleet, ['198.18.0.7', '80'], { wrap, env: { MARK: '42' } });
      assert.equal(r.code, 0, r.stdout);
      const calls = fs.readFileSync(log, 'utf8').trim().split('\n');
      assert.ok(calls.includes('loaded'), 'the shim was loaded into the check');
      assert.deepEqual(calls.filter((c) => c !== 'loaded'), [], 'no socket call went through the shim');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the check path loads neither commander, piscina, the engine nor the outputs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ho-mods-'));
    try {
      const pre = path.join(dir, 'record.js'), out = path.join(dir, 'modules.json');
      fs.writeFileSync(pre, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(require.cache))));\n`);
      for (const entry of ['bin', 'main'] as const) {
        const r = await check(fleet, ['198.18.0.7', '80'], { entry, node: ['-r', pre] });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const mods: string[] = JSON.parse(fs.readFileSync(out, 'utf8'));
        assert.ok(mods.some((m) => m.endsWith('halfopen.node')), 'the addon did the check');
        const heavy = mods.filter((m) => /node_modules[\\/](commander|piscina)|[\\/](engine|output|fleet)[\\/]|sweep\.js$/.test(m));
        assert.deepEqual(heavy, [], `${entry}: ${mods.map((m) => path.relative(ROOT, m)).join(', ')}`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('50 checks in a row leave no XDP attachment, BPF pin, process or half-open socket behind', async (t) => {
    const pinsBefore = listPins();
    const times: number[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await check(fleet, i % 5 === 4 ? ['198.18.0.7', '81'] : ['198.18.0.7', '80']);
      assert.equal(r.code, i % 5 === 4 ? 2 : 0, r.stdout + r.stderr);
      times.push(r.ms);
    }
    assert.doesNotMatch(fleet.exec('prober', 'ip', ['-d', 'link', 'show']), /\bxdp/, 'no XDP on any prober link');
    assert.doesNotMatch(fleet.exec('prober', 'bpftool', ['net', 'show']), /halfopen|xdp.*id/, 'no XDP/tc program in the prober namespace');
    assert.deepEqual([...listPins()].filter((p) => !pinsBefore.has(p)), [], 'no new BPF pins');
    assert.deepEqual(leftoverChecks(), [], 'no check process left');
    assert.equal(fleet.synRecvCount(), 0, 'no SYN-RECV on the fleet');
    assert.deepEqual(fleet.acceptedConnections(), [], 'the listener accepted nothing');
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)];
    t.diagnostic(`50 checks: median ${median.toFixed(1)} ms, max ${times[times.length - 1].toFixed(1)} ms per process (with ip netns exec)`);
  });
});

function listPins(): Set<string> {
  const out = new Set<string>();
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = path.join(d, e.name);
      out.add(p);
      if (e.isDirectory()) walk(p);
    }
  };
  walk('/sys/fs/bpf');
  return out;
}

/** Processes still running the check's entry points. */
function leftoverChecks(): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let cmd = '';
    try { cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' '); } catch { continue; }
    if (cmd.includes(BIN) || cmd.includes(`${MAIN} check`)) out.push(`${name}: ${cmd}`);
  }
  return out;
}
