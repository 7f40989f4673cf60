// check_tcp_half_open (native) and `halfopen check` (Node) against a
// namespace fleet. One table of cases runs against both entry points; both
// must exit alike and print the same stdout once measured times are
// normalised. Then a real Postfix proves that a half-open check never reaches
// the application (no "connect from" in its log) where a plain connect check
// always does; an LD_PRELOAD shim cannot break either; nothing is left behind.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet, FleetSpec } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import { collect, CliResult, MAIN, ROOT } from '../helpers/cli';
import { PostfixInstance, postfixSkipReason } from '../helpers/postfix';

const skip = netnsSkipReason();
/** package.json's bin.check_tcp_half_open. */
const NATIVE = path.join(ROOT, 'native/plugin/build/check_tcp_half_open');
// A plugin that failed to build is a failure (the test below), not a reason to skip: both suites
// run whenever the namespaces can be made, and the native cases then fail on the missing binary.
const nativeSkip = skip;
const USAGE_LINE = 'Usage: check_tcp_half_open HOST PORT | check_tcp_half_open -H HOST -p PORT [-t SECONDS] [-w SECONDS] [-c SECONDS] [-4|-6] [--json]';

const SPEC: FleetSpec = {
  tag: 'check',
  v4: '198.18.0.0/24',
  v6: '2001:2::/120',
  open: [80],
  drop: ['198.18.0.128/28', '2001:2::80/124'],
  reject: ['198.18.0.144/28', '2001:2::90/124'],
  hosts: {
    'backend.halfopen.test': ['198.18.0.8', '2001:2::8'],
    'v4only.halfopen.test': ['198.18.0.9'],
  },
};
const SMTP = '198.18.0.25';
const DROPPED_RESOLVER = '198.18.0.131';

type Entry = 'native' | 'node';
const ENTRIES: Entry[] = ['native', 'node'];

interface RunOpts { env?: Record<string, string>; wrap?: string[]; node?: string[]; timeoutMs?: number }
interface Timed extends CliResult { ms: number }

/** Runs one entry point in the prober namespace; times the whole process. */
async function check(fleet: Fleet, entry: Entry, args: string[], o: RunOpts = {}): Promise<Timed> {
  const cmd = entry === 'native' ? [NATIVE] : [process.execPath, ...(o.node ?? []), MAIN, 'check'];
  const argv = [...fleet.proberArgv(), ...(o.wrap ?? []), ...cmd, ...args];
  const t0 = process.hrtime.bigint();
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT, env: { ...process.env, MARK: '', ...o.env } });
  const r = await collect(child, o.timeoutMs ?? 30_000);
  return { ...r, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

/** stdout with the measured values (times, RTTs, timestamps) replaced, so both entry points compare equal. */
function normalize(stdout: string): string {
  return stdout
    .replace(/\d+\.\d{6}(?= second response time)/g, 'T')
    .replace(/\|time=\d+\.\d{6}s;/g, '|time=Ts;')
    .replace(/ in \d+\.\d{3} seconds/g, ' in T seconds')
    .replace(/"rtt_ms":\d+(\.\d+)?/g, '"rtt_ms":N')
    .replace(/"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"/g, '"ts":"TS"');
}

function nftCounter(fleet: Fleet, ns: 'prober' | 'fleet', table: string, name: string): number {
  const j = JSON.parse(fleet.exec(ns, 'nft', ['-j', 'list', 'counter', 'inet', table, name]));
  return (j.nftables as Array<{ counter?: { packets: number } }>).find((x) => x.counter)!.counter!.packets;
}

function nft(fleet: Fleet, ns: 'prober' | 'fleet', ruleset: string): void {
  execFileSync('ip', ['netns', 'exec', ns === 'prober' ? fleet.prober : fleet.fleet, 'nft', '-f', '-'], { input: ruleset });
}

/** N plain TCP connects (what nc -z or check_tcp do), one after another, from the prober namespace. */
function plainConnects(fleet: Fleet, host: string, port: number, n: number): string {
  const script = `const net=require('net');let i=0;const next=()=>{if(i++>=${n})return;` +
    `const s=net.connect(${port},'${host}',()=>{s.destroy();next();});s.on('error',(e)=>{console.error(e.message);process.exit(1);});};next();`;
  return execFileSync('ip', ['netns', 'exec', fleet.prober, process.execPath, '-e', script], { encoding: 'utf8' });
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const PERF = (t = '5.000000', w = '', c = '') => `\\|time=\\d+\\.\\d{6}s;${esc(w)};${esc(c)};0\\.000000;${esc(t)}\\n$`;
const OK = (where: string, o: { t?: string; w?: string; c?: string; label?: string } = {}) =>
  new RegExp(`^TCP ${o.label ?? 'OK'} - \\d+\\.\\d{6} second response time on ${esc(where)}${PERF(o.t, o.w, o.c)}`);
const CRIT = (text: string, t = '5.000000', w = '', c = '') => new RegExp(`^TCP CRITICAL - ${text}${PERF(t, w, c)}`);
const UNKNOWN = (re: RegExp, usage = true) =>
  new RegExp(`^TCP UNKNOWN - .*${re.source}.*\\n${usage ? `${esc(USAGE_LINE)}\\n` : ''}$`);
const JSON_LINE = (o: Record<string, unknown>) => ({ json: o });

interface Case {
  name: string;
  args: string[];
  code: number;
  /** The expected stdout: a pattern, or for --json the object (rtt_ms and ts only checked for type). */
  out: RegExp | { json: Record<string, unknown> };
  env?: Record<string, string>;
  wrap?: string[];
  /**
   * Whole-process time bounds, ms, only where the deadline is the promise (README, halfopen check:
   * "-t deadline for the whole check"; "a lost SYN is resent after 0.2 s"): a reply ends the check
   * without waiting out -t (default 5 s, so under 3 s says it did not wait), and silence ends it at
   * -t, not before and not long after. The ceilings are generous for a loaded 2-core machine: these
   * are contracts, not speeds (bench/check.ts measures speed).
   */
  ms?: [number, number];
  /** Runs before each entry point's run; returns what to undo afterwards. */
  setup?: (fleet: Fleet) => () => void;
  /** Runs after each entry point's run, before the undo. */
  verify?: (fleet: Fleet, r: Timed, entry: Entry) => void;
}

const dropOnceTable = 'ho_check_drop_once';
const markTable = 'ho_check_mark';
const markSetup = (fleet: Fleet) => {
  nft(fleet, 'prober', `table inet ${markTable} {\n counter marked {}\n counter syns {}\n chain out {\n` +
    '  type filter hook output priority 0; policy accept;\n  tcp flags syn counter name syns\n  meta mark 0x2a tcp flags syn counter name marked\n }\n}\n');
  return () => fleet.exec('prober', 'nft', ['delete', 'table', 'inet', markTable]);
};
const marked = (fleet: Fleet) => [nftCounter(fleet, 'prober', markTable, 'marked'), nftCounter(fleet, 'prober', markTable, 'syns')];

const CASES: Case[] = [
  // verdicts
  { name: 'open IPv4', args: ['198.18.0.7', '80'], code: 0, out: OK('198.18.0.7 port 80'), ms: [0, 3000] },
  { name: 'open IPv4, -H -p --json', args: ['-H', '198.18.0.7', '-p', '80', '--json'], code: 0,
    out: JSON_LINE({ ip: '198.18.0.7', port: 80, state: 'open', reason: 'syn-ack', rtt_ms: 'number', ttl: 64, ts: 'string' }) },
  { name: 'closed IPv4 (RST), at once', args: ['198.18.0.7', '81'], code: 2, out: CRIT('Connection refused \\(RST\\) on 198\\.18\\.0\\.7 port 81'), ms: [0, 3000] },
  { name: 'open IPv6', args: ['-H', '2001:2::7', '-p', '80'], code: 0, out: OK('2001:2::7 port 80') },
  { name: 'closed IPv6', args: ['[2001:2::7]', '81'], code: 2, out: CRIT('Connection refused \\(RST\\) on 2001:2::7 port 81') },
  { name: 'IPv6 written long is shown as given, with its canonical address', args: ['2001:2:0:0::7', '80'], code: 0,
    out: OK('2001:2:0:0::7 (2001:2::7) port 80') },
  { name: 'filtered IPv4 with -t 1: CRITICAL at the deadline, having resent the SYN', args: ['-H', '198.18.0.130', '-p', '80', '-t', '1'], code: 2,
    // SYNs at 0, 0.2 and 0.6 s; the next would be at 1.4 s, past the deadline. The check's own
    // deadline is whole milliseconds, so it may end a fraction of one before the second is up.
    out: /^TCP CRITICAL - No response \(filtered\) on 198\.18\.0\.130 port 80: 3 SYNs in (0\.999|1\.0\d\d) seconds\|time=(0\.99\d{4}|1\.0\d{5})s;;;0\.000000;1\.000000\n$/, ms: [990, 2500] },
  { name: 'filtered IPv6 --json -t 0.5', args: ['2001:2::81', '80', '-t', '0.5', '--json'], code: 2,
    out: JSON_LINE({ ip: '2001:2::81', port: 80, state: 'filtered', reason: 'no-response', rtt_ms: null, ttl: null, ts: 'string' }), ms: [500, 2000] },
  { name: 'ICMP unreachable IPv4', args: ['198.18.0.150', '80'], code: 2,
    out: CRIT('Host unreachable \\(ICMP type 3 code 1 from 198\\.18\\.0\\.150\\) on 198\\.18\\.0\\.150 port 80') },
  { name: 'ICMP unreachable IPv6', args: ['2001:2::95', '80'], code: 2,
    out: CRIT('Address unreachable \\(ICMP type 1 code 3 from 2001:2:0:ffff::2\\) on 2001:2::95 port 80') },
  { name: 'ICMP unreachable IPv6 --json', args: ['2001:2::95', '80', '--json'], code: 2,
    out: JSON_LINE({ ip: '2001:2::95', port: 80, state: 'unreachable', reason: 'icmp-1-3', rtt_ms: 'number', ttl: 'number', ts: 'string' }) },
  // hostnames (the fleet's hosts file, bind-mounted by ip netns exec)
  { name: 'hostname -6', args: ['-6', 'backend.halfopen.test', '80'], code: 0, out: OK('backend.halfopen.test (2001:2::8) port 80') },
  { name: 'hostname -4, closed', args: ['-H', 'backend.halfopen.test', '-p', '81', '-4'], code: 2,
    out: CRIT('Connection refused \\(RST\\) on backend\\.halfopen\\.test \\(198\\.18\\.0\\.8\\) port 81') },
  { name: 'hostname with one IPv4 address', args: ['v4only.halfopen.test', '80'], code: 0, out: OK('v4only.halfopen.test (198.18.0.9) port 80') },
  { name: 'hostname with no IPv6 address, -6', args: ['-6', 'v4only.halfopen.test', '80', '-t', '3'], code: 2,
    out: CRIT('cannot resolve "v4only\\.halfopen\\.test": \\w+', '3.000000') },
  { name: 'unresolvable name', args: ['nosuch.halfopen.test', '80', '-t', '3'], code: 2,
    out: CRIT('cannot resolve "nosuch\\.halfopen\\.test": \\w+', '3.000000') },
  { name: 'unresolvable name --json', args: ['nosuch.halfopen.test', '80', '-t', '3', '--json'], code: 2,
    out: JSON_LINE({ ip: null, port: 80, state: 'unreachable', reason: 'dns-failure', rtt_ms: null, ttl: null, ts: 'string' }) },
  { name: 'a resolver that never answers: CRITICAL at the deadline', args: ['slow.halfopen.test', '80', '-t', '0.75'], code: 2,
    out: CRIT('resolving "slow\\.halfopen\\.test" took longer than the 0\\.75 s deadline', '0.750000'), ms: [740, 2000],
    setup: (fleet) => {
      const conf = path.join('/etc/netns', fleet.prober, 'resolv.conf');
      const was = fs.readFileSync(conf, 'utf8');
      // The fleet drops the queries to this resolver: they go unanswered for 5 s.
      nft(fleet, 'fleet', 'table inet ho_check_dns_drop {\n chain input {\n  type filter hook input priority -10;\n' +
        `  ip daddr ${DROPPED_RESOLVER} udp dport 53 drop\n }\n}\n`);
      fs.writeFileSync(conf, `nameserver ${DROPPED_RESOLVER}\noptions timeout:5 attempts:1\n`);
      return () => {
        fs.writeFileSync(conf, was);
        fleet.exec('fleet', 'nft', ['delete', 'table', 'inet', 'ho_check_dns_drop']);
      };
    } },
  // thresholds
  { name: '-w 0: WARNING above it', args: ['198.18.0.7', '80', '-w', '0'], code: 1, out: OK('198.18.0.7 port 80', { label: 'WARNING', w: '0.000000' }) },
  { name: '-c 0: CRITICAL above it', args: ['198.18.0.7', '80', '-w', '0', '-c', '0'], code: 2,
    out: OK('198.18.0.7 port 80', { label: 'CRITICAL', w: '0.000000', c: '0.000000' }) },
  { name: '-w 1 -c 2: OK below them, perfdata carries them', args: ['-H', '198.18.0.7', '-p', '80', '-w', '1', '-c', '2', '-t', '3'], code: 0,
    out: OK('198.18.0.7 port 80', { t: '3.000000', w: '1.000000', c: '2.000000' }) },
  { name: '-w/-c on a closed port: CRITICAL for the RST', args: ['198.18.0.7', '81', '-w', '1', '-c', '2'], code: 2,
    out: CRIT('Connection refused \\(RST\\) on 198\\.18\\.0\\.7 port 81', '5.000000', '1.000000', '2.000000') },
  // usage
  ...([
    [[], /missing HOST/],
    [['198.18.0.7'], /missing PORT/],
    [['198.18.0.7', '0'], /invalid port "0": expected a number from 1 to 65535/],
    [['-H', '198.18.0.7', '-p', 'http'], /invalid port "http"/],
    [['198.18.0.7', '80', '-t', 'x'], /invalid timeout "x"/],
    [['198.18.0.7', '80', '-t', '0'], /invalid timeout "0"/],
    [['198.18.0.7', '80', '-w', '-1'], /unknown option "-1"|invalid warning threshold/],
    [['198.18.0.7', '80', '-c', 'soon'], /invalid critical threshold "soon"/],
    [['--frobnicate', '198.18.0.7', '80'], /unknown option "--frobnicate"/],
    [['198.18.0.7', '80', 'extra'], /unexpected argument "extra"/],
    [['-4', '-6', '198.18.0.7', '80'], /-4 and -6 exclude each other/],
    [['-p', '80', '-p', '81', '198.18.0.7'], /-p given twice/],
    [['198.18.0.7', '80', '-t'], /-t needs a value/],
    [['-6', '198.18.0.7', '80'], /198\.18\.0\.7 is an IPv4 address but -6 was given/],
  ] as Array<[string[], RegExp]>).map(([args, re]): Case => ({ name: `usage: ${args.join(' ') || '(no arguments)'}`, args, code: 3, out: UNKNOWN(re) })),
  { name: 'usage with --json after parsing: one JSON object', args: ['-6', '198.18.0.7', '80', '--json'], code: 3,
    out: JSON_LINE({ ip: null, port: 80, state: 'unknown', reason: 'E_USAGE', error: '198.18.0.7 is an IPv4 address but -6 was given' }) },
  { name: '--help', args: ['--help'], code: 0, out: new RegExp(`^${esc(USAGE_LINE)}\\n[^]*-w, --warning SECS[^]*Exit codes: 0 OK`) },
  { name: '--version', args: ['-V'], code: 0, out: /^check_tcp_half_open \(halfopen\) \d+\.\d+\.\d+\n$/ },
  // privileges
  { name: 'not root: UNKNOWN naming CAP_NET_RAW', args: ['198.18.0.7', '80'], code: 3, wrap: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'],
    out: UNKNOWN(/the half-open check needs CAP_NET_RAW \(raw sockets\): run it as root, or through sudo/, false) },
  { name: 'not root --json', args: ['198.18.0.7', '80', '--json'], code: 3, wrap: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'],
    out: JSON_LINE({ ip: null, port: 80, state: 'unknown', reason: 'E_PRIVILEGE', error: 'the half-open check needs CAP_NET_RAW (raw sockets): run it as root, or through sudo' }) },
  // MARK, proven by an nftables counter on the prober's output hook
  { name: 'MARK=42 marks the IPv4 SYN', args: ['198.18.0.7', '80'], code: 0, env: { MARK: '42' }, out: OK('198.18.0.7 port 80'), setup: markSetup,
    verify: (fleet) => assert.deepEqual(marked(fleet), [1, 1]) },
  { name: 'MARK=0x2a marks the IPv6 SYN', args: ['2001:2::7', '80'], code: 0, env: { MARK: '0x2a' }, out: OK('2001:2::7 port 80'), setup: markSetup,
    verify: (fleet) => assert.deepEqual(marked(fleet), [1, 1]) },
  { name: 'no MARK, no mark', args: ['198.18.0.7', '80'], code: 0, out: OK('198.18.0.7 port 80'), setup: markSetup,
    verify: (fleet) => assert.deepEqual(marked(fleet), [0, 1]) },
  { name: 'a bad MARK', args: ['198.18.0.7', '80'], code: 3, env: { MARK: 'mark' },
    out: UNKNOWN(/invalid MARK "mark" in the environment: expected a decimal or 0x hex number up to 0xffffffff/, false) },
  // retries and the local firewall
  { name: 'a lost first SYN is resent within the deadline, with the RTT of the SYN that got through', args: ['198.18.0.11', '80', '--json'], code: 0,
    out: JSON_LINE({ ip: '198.18.0.11', port: 80, state: 'open', reason: 'syn-ack', rtt_ms: 'number', ttl: 64, ts: 'string' }), ms: [200, 3000],
    setup: (fleet) => {
      // The fleet drops the first SYN to 198.18.0.11:80 (a 50-byte quota holds one 44-byte SYN).
      nft(fleet, 'fleet', `table inet ${dropOnceTable} {\n chain input {\n  type filter hook input priority -10;\n` +
        '  ip daddr 198.18.0.11 tcp dport 80 tcp flags syn quota until 50 bytes drop\n }\n}\n');
      return () => fleet.exec('fleet', 'nft', ['delete', 'table', 'inet', dropOnceTable]);
    },
    verify: (fleet, r) => {
      // The resend leaves 200 ms after the lost SYN (README: "resent after 0.2 s"): an RTT measured
      // from the lost one would be at least that; the retry's own is a local round trip.
      assert.ok(JSON.parse(r.stdout).rtt_ms < 200, `rtt ${r.stdout} is the retry's, not measured from the lost SYN`);
      assert.match(fleet.exec('fleet', 'nft', ['list', 'table', 'inet', dropOnceTable]), /quota 50 bytes used (44|50) bytes/, 'the first SYN was dropped');
    } },
  { name: 'a local firewall that drops the SYN on output: CRITICAL at once, saying so', args: ['198.18.0.12', '80'], code: 2,
    out: CRIT('SYN dropped by a local firewall rule \\(EPERM\\) on 198\\.18\\.0\\.12 port 80'), ms: [0, 3000],
    setup: (fleet) => {
      nft(fleet, 'prober', 'table inet ho_check_out_drop {\n chain out {\n  type filter hook output priority 0; policy accept;\n' +
        '  ip daddr 198.18.0.12 tcp flags syn drop\n }\n}\n');
      return () => fleet.exec('prober', 'nft', ['delete', 'table', 'inet', 'ho_check_out_drop']);
    } },
];

function assertOut(c: Case, entry: Entry, r: Timed): void {
  const what = `${entry}: ${c.args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`;
  assert.equal(r.code, c.code, what);
  assert.equal(r.stderr, '', what);
  if (c.out instanceof RegExp) {
    assert.match(r.stdout, c.out, what);
    return;
  }
  assert.match(r.stdout, /^\{.*\}\n$/, what);
  // rtt_ms as roundMs leaves it: at most three decimals (the native plugin formats numbers as JavaScript does).
  assert.match(r.stdout, /"rtt_ms":(null|\d+(\.\d{1,3})?),|"error":/, what);
  const got = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.deepEqual(Object.keys(got), Object.keys(c.out.json), what);
  for (const [k, want] of Object.entries(c.out.json)) {
    if (want === 'number' || want === 'string') assert.equal(typeof got[k], want, `${what}: ${k}`);
    else assert.deepEqual(got[k], want, `${what}: ${k}`);
  }
}

describe('check: the native plugin is built', { skip }, () => {
  test(`${path.relative(ROOT, NATIVE)} exists and runs`, () => {
    assert.ok(fs.existsSync(NATIVE), `${NATIVE} is not built: bash scripts/build.sh (a failed plugin build fails this tier)`);
    const r = spawnSync(NATIVE, ['--version'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\d+\.\d+/);
  });
});

describe('check: half-open against a real Postfix', { skip: nativeSkip || postfixSkipReason() }, () => {
  let fleet: Fleet;
  let postfix: PostfixInstance | undefined;
  before(async () => {
    fleet = await Fleet.create({ ...SPEC, hosts: undefined, tag: 'chkpf' });
    postfix = await PostfixInstance.start(fleet, SMTP, 25);
  });
  after(async () => {
    try { await postfix?.stop(); } finally { fleet?.remove(); }
  });

  test('N checks report OK and Postfix logs no connection; N plain connects log N', async () => {
    const N = 10;
    for (let i = 0; i < N; i++) {
      // Mostly the native plugin, as farmguardian runs it; every third through halfopen check.
      const entry: Entry = i % 3 === 2 ? 'node' : 'native';
      const r = await check(fleet, entry, i % 2 ? ['-H', SMTP, '-p', '25'] : [SMTP, '25']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, OK(`${SMTP} port 25`));
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

describe('check: one table of cases, native check_tcp_half_open and halfopen check alike', { skip: nativeSkip }, () => {
  let fleet: Fleet;
  before(async () => {
    fleet = await Fleet.create(SPEC);
    // A resolver on the prober's own loopback, where nothing listens: unknown names fail at once, and nothing leaves.
    fs.writeFileSync(path.join('/etc/netns', fleet.prober, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
  });
  after(() => fleet?.remove());

  for (const c of CASES) {
    test(c.name, async () => {
      const got: Partial<Record<Entry, Timed>> = {};
      for (const entry of ENTRIES) {
        const undo = c.setup?.(fleet);
        try {
          const r = await check(fleet, entry, c.args, { env: c.env, wrap: c.wrap });
          assertOut(c, entry, r);
          if (c.ms) assert.ok(r.ms >= c.ms[0] && r.ms < c.ms[1], `${entry}: whole process ${r.ms.toFixed(0)} ms, expected ${c.ms[0]}-${c.ms[1]}`);
          c.verify?.(fleet, r, entry);
          got[entry] = r;
        } finally {
          undo?.();
        }
      }
      assert.equal(normalize(got.native!.stdout), normalize(got.node!.stdout), 'the same stdout from both entry points');
    });
  }

  test('the native plugin links only libc: no Node, no libbpf, no libstdc++', () => {
    const libs = execFileSync('ldd', [NATIVE], { encoding: 'utf8' }).split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
    const unexpected = libs.filter((l) => !/^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|\/lib6?4?\/ld-linux[-\w.]*\.so\.\d|\/lib\/ld-linux[-\w.]*\.so\.\d)$/.test(l));
    assert.deepEqual(unexpected, [], libs.join(', '));
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    assert.equal(path.join(ROOT, pkg.bin.check_tcp_half_open), NATIVE, "package.json's bin is the native plugin");
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
      for (const entry of ENTRIES) {
        for (const args of [['198.18.0.7', '80'], ['2001:2::7', '80'], ['198.18.0.7', '81']]) {
          const r = await check(fleet, entry, args, { wrap });
          assert.equal(r.code, args[1] === '80' ? 0 : 2, `${entry}: ${r.stdout}${r.stderr}`);
        }
        const r = await check(fleet, entry, ['198.18.0.7', '80'], { wrap, env: { MARK: '42' } });
        assert.equal(r.code, 0, `${entry}: ${r.stdout}`);
      }
      const calls = fs.readFileSync(log, 'utf8').trim().split('\n');
      // 4 native runs, and 4 of halfopen check, each node plus the plugin it runs.
      assert.equal(calls.filter((c) => c === 'loaded').length, 12, 'the shim was loaded into every check process');
      assert.deepEqual(calls.filter((c) => c !== 'loaded'), [], 'no socket call went through the shim');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('halfopen check loads neither the addon, commander, piscina, the engine nor the outputs: the plugin checks', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ho-mods-'));
    try {
      const pre = path.join(dir, 'record.js'), out = path.join(dir, 'modules.json');
      fs.writeFileSync(pre, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(require.cache))));\n`);
      const r = await check(fleet, 'node', ['198.18.0.7', '80'], { node: ['-r', pre] });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const mods: string[] = JSON.parse(fs.readFileSync(out, 'utf8'));
      assert.ok(!mods.some((m) => m.endsWith('halfopen.node')), 'the native plugin did the check, not the addon');
      const heavy = mods.filter((m) => /node_modules[\\/](commander|piscina)|[\\/](engine|output|fleet)[\\/]|sweep\.js$/.test(m));
      assert.deepEqual(heavy, [], mods.map((m) => path.relative(ROOT, m)).join(', '));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('50 native checks in a row leave no XDP attachment, BPF pin, process or half-open socket behind', async (t) => {
    const pinsBefore = listPins();
    if (!pinsBefore) t.diagnostic('no bpf filesystem is mounted on /sys/fs/bpf: no pin can be made; orphaned programs are checked instead');
    const progsBefore = new Set(orphanPrograms());
    const times: number[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await check(fleet, 'native', i % 5 === 4 ? ['198.18.0.7', '81'] : ['198.18.0.7', '80']);
      assert.equal(r.code, i % 5 === 4 ? 2 : 0, r.stdout + r.stderr);
      times.push(r.ms);
    }
    assert.doesNotMatch(fleet.exec('prober', 'ip', ['-d', 'link', 'show']), /\bxdp/, 'no XDP on any prober link');
    assert.doesNotMatch(fleet.exec('prober', 'bpftool', ['net', 'show']), /halfopen|xdp.*id/, 'no XDP/tc program in the prober namespace');
    if (pinsBefore) assert.deepEqual([...listPins()!].filter((p) => !pinsBefore.has(p)), [], 'no new BPF pins');
    // A program kept alive by a pin or an attachment, with no process holding it, is what a leak looks like.
    assert.deepEqual(orphanPrograms().filter((id) => !progsBefore.has(id)), [], 'no new halfopen BPF program left without an owner');
    assert.deepEqual(leftoverChecks(), [], 'no check process left');
    assert.equal(fleet.synRecvCount(), 0, 'no SYN-RECV on the fleet');
    assert.deepEqual(fleet.acceptedConnections(), [], 'the listener accepted nothing');
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)];
    t.diagnostic(`50 checks: median ${median.toFixed(1)} ms, max ${times[times.length - 1].toFixed(1)} ms per process (with ip netns exec)`);
  });
});

/**
 * Every path under the BPF filesystem, or null when none is mounted there (so
 * "no new pins" is not two empty lists compared). A read error fails the
 * test, except a directory that vanished between listing and reading
 * (someone else's pin removed meanwhile).
 */
function listPins(): Set<string> | null {
  const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' '));
  if (!mounts.some((m) => m[1] === '/sys/fs/bpf' && m[2] === 'bpf')) return null;
  const out = new Set<string>();
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && d !== '/sys/fs/bpf') return;
      throw e;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      out.add(p);
      if (e.isDirectory()) walk(p);
    }
  };
  walk('/sys/fs/bpf');
  return out;
}

/** Ids of loaded halfopen programs (halfopen_xdp, halfopen_tc) that no process holds open. */
function orphanPrograms(): number[] {
  const progs = JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8' }) || '[]') as Array<{ id: number; name?: string; pids?: unknown[] }>;
  return progs.filter((p) => /^halfopen_/.test(p.name ?? '') && !p.pids?.length).map((p) => p.id);
}

/** Processes still running the check's entry points. */
function leftoverChecks(): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let cmd = '';
    try { cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' '); } catch { continue; }
    if (cmd.includes(NATIVE) || cmd.includes(`${MAIN} check`)) out.push(`${name}: ${cmd}`);
  }
  return out;
}
