// The check's arguments, MARK and target resolution, as the native plugin
// (the one implementation, which `halfopen check` runs) takes them. Each run
// is inside a namespace of this test's own with nothing but a down loopback:
// no route exists, so a well-formed check ends at once as "No route to host"
// (nothing can leave), and its line shows what was parsed — the host, its
// address, the port, -w/-c and -t in the perfdata — while a malformed one is
// UNKNOWN before anything is sent. /etc/netns/<ns>/hosts names a host.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { netnsSkipReason } from '../helpers/privileges';
import { MAIN, ROOT } from '../helpers/cli';

const PLUGIN = path.join(ROOT, 'native/plugin/build/check_tcp_half_open');
const skip = netnsSkipReason();
const NS = `hoargs${process.pid}`;
const USAGE_LINE = 'Usage: check_tcp_half_open HOST PORT | check_tcp_half_open -H HOST -p PORT [-t SECONDS] [-w SECONDS] [-c SECONDS] [-4|-6] [--json]';

interface Run { code: number | null; stdout: string; stderr: string }

function plugin(args: string[], env: Record<string, string> = {}, entry: 'native' | 'node' = 'native'): Run {
  const cmd = entry === 'native' ? [PLUGIN] : [process.execPath, MAIN, 'check'];
  const r = spawnSync('ip', ['netns', 'exec', NS, ...cmd, ...args], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, MARK: '', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What a parsed check prints when it cannot route: host text, port, and the perfdata's warn;crit;0;timeout. */
function noRoute(args: string[], on: string, perf: { w?: string; c?: string; t?: string } = {}): void {
  const r = plugin(args);
  assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
  const re = new RegExp(`^TCP CRITICAL - No route to host \\((ENETUNREACH|EADDRNOTAVAIL)\\) on ${on.replace(/[.()[\]]/g, '\\$&')}\\|time=\\d+\\.\\d{6}s;${perf.w ?? ''};${perf.c ?? ''};0\\.000000;${(perf.t ?? '5.000000').replace('.', '\\.')}\\n$`);
  assert.match(r.stdout, re, args.join(' '));
}

function usage(args: string[], re: RegExp): void {
  const r = plugin(args);
  assert.equal(r.code, 3, `${args.join(' ')}: ${r.stdout}`);
  const [line, use, ...rest] = r.stdout.split('\n');
  assert.match(line, new RegExp(`^TCP UNKNOWN - ${re.source}`), args.join(' '));
  assert.equal(use, USAGE_LINE);
  assert.deepEqual(rest, ['']);
}

describe('check arguments (native plugin, in an empty namespace)', { skip }, () => {
  before(() => {
    if (!fs.existsSync(PLUGIN)) throw new Error(`${PLUGIN} is not built (bash scripts/build.sh)`);
    execFileSync('ip', ['netns', 'add', NS]);
    fs.mkdirSync(`/etc/netns/${NS}`, { recursive: true });
    fs.writeFileSync(`/etc/netns/${NS}/hosts`, '198.18.0.8 backend.example\n2001:2::8 backend.example\n198.18.0.9 v4only.example\n');
  });
  after(() => {
    try { execFileSync('ip', ['netns', 'del', NS]); } catch { /* never created */ }
    fs.rmSync(`/etc/netns/${NS}`, { recursive: true, force: true });
  });

  test('HOST PORT', () => noRoute(['198.18.0.7', '80'], '198.18.0.7 port 80'));

  test('-H HOST -p PORT with every option', () => {
    const r = plugin(['-H', 'backend.example', '-p', '8080', '-t', '2.5', '-4', '--json']);
    assert.equal(r.code, 2);
    const j = JSON.parse(r.stdout);
    assert.deepEqual({ ip: j.ip, port: j.port, state: j.state, reason: j.reason }, { ip: '198.18.0.8', port: 8080, state: 'unreachable', reason: 'no-route' });
    noRoute(['-p', '443', '-6', '-H', '2001:2::7'], '2001:2::7 port 443');
  });

  test('attached and long forms', () => {
    for (const a of [['-H198.18.0.7', '-p25', '-t0.5'], ['--hostname=198.18.0.7', '--port=25', '--timeout=.5'], ['--hostname', '198.18.0.7', '--port', '25', '--timeout', '0.5']])
      noRoute(a, '198.18.0.7 port 25', { t: '0.500000' });
    noRoute(['--use-ipv6', '2001:2::7', '25'], '2001:2::7 port 25');
  });

  test('mixed: -H with a positional port, options after positionals, -- and [v6]', () => {
    noRoute(['-H', '198.18.0.7', '80'], '198.18.0.7 port 80');
    noRoute(['198.18.0.7', '80', '-t', '3'], '198.18.0.7 port 80', { t: '3.000000' });
    noRoute(['--', '198.18.0.7', '80'], '198.18.0.7 port 80');
    noRoute(['[2001:2::7]', '80'], '2001:2::7 port 80');
  });

  test('-4 twice is fine; the default timeout is 5 s', () => {
    noRoute(['-4', '-4', 'backend.example', '1'], 'backend.example (198.18.0.8) port 1');
    noRoute(['198.18.0.7', '1'], '198.18.0.7 port 1', { t: '5.000000' });
  });

  test('-w and -c thresholds, in every form', () => {
    noRoute(['198.18.0.7', '80', '-w', '0.5', '-c', '1'], '198.18.0.7 port 80', { w: '0.500000', c: '1.000000' });
    noRoute(['-H', '198.18.0.7', '-p', '80', '--warning=.25', '-c0'], '198.18.0.7 port 80', { w: '0.250000', c: '0.000000' });
    usage(['198.18.0.7', '80', '-w', 'x'], /invalid warning threshold "x": expected seconds from 0 to 3600/);
    usage(['198.18.0.7', '80', '-c', '3601'], /invalid critical threshold "3601"/);
    usage(['198.18.0.7', '80', '-c', '1', '--critical', '2'], /--critical given twice/);
  });

  test('help and version, whatever else is given', () => {
    for (const a of [['-h'], ['198.18.0.7', '--help']]) {
      const r = plugin(a);
      assert.equal(r.code, 0);
      assert.ok(r.stdout.startsWith(`${USAGE_LINE}\n`), r.stdout);
    }
    assert.match(plugin(['-V']).stdout, /^check_tcp_half_open \(halfopen\) \d+\.\d+\.\d+\n$/);
  });

  const bad: Array<[string, string[], RegExp]> = [
    ['nothing', [], /missing HOST/],
    ['no port', ['198.18.0.7'], /missing PORT/],
    ['no port with -H', ['-H', '198.18.0.7'], /missing PORT/],
    ['empty host', ['-H', '', '-p', '80'], /missing HOST/],
    ['port 0', ['198.18.0.7', '0'], /invalid port "0": expected a number from 1 to 65535/],
    ['port 65536', ['198.18.0.7', '65536'], /invalid port "65536"/],
    ['port name', ['198.18.0.7', 'http'], /invalid port "http"/],
    ['port with sign', ['-H', '198.18.0.7', '-p', '+80'], /invalid port "\+80"/],
    ['timeout 0', ['198.18.0.7', '80', '-t', '0'], /invalid timeout "0"/],
    ['timeout words', ['198.18.0.7', '80', '-t', 'soon'], /invalid timeout "soon"/],
    ['timeout too long', ['198.18.0.7', '80', '-t', '3601'], /invalid timeout "3601": expected seconds above 0 and at most 3600/],
    ['flag without value', ['198.18.0.7', '80', '-t'], /-t needs a value/],
    ['unknown option', ['--frobnicate', '198.18.0.7', '80'], /unknown option "--frobnicate"/],
    ['negative port looks like an option', ['198.18.0.7', '-1'], /unknown option "-1"/],
    ['extra argument', ['198.18.0.7', '80', '81'], /unexpected argument "81"/],
    ['host twice', ['-H', 'a', '-H', 'b', '-p', '1'], /-H given twice/],
    ['port twice', ['-H', 'a', '-p', '1', '--port=2'], /--port given twice/],
    ['-4 and -6', ['-4', '-6', 'a', '1'], /-4 and -6 exclude each other/],
    ['an IPv4 literal with -6', ['-6', '198.18.0.7', '80'], /198\.18\.0\.7 is an IPv4 address but -6 was given/],
    ['an IPv6 literal with -4', ['-4', '2001:2::7', '80'], /2001:2::7 is an IPv6 address but -4 was given/],
  ];
  for (const [name, argv, re] of bad) test(`usage error: ${name}`, () => usage(argv, re));

  test('MARK: unset, empty, decimal and 0x hex are accepted; anything else is UNKNOWN naming it', () => {
    for (const m of ['', '42', '0x2a', '0X2A', ' 0x2a\n', '4294967295']) {
      const r = plugin(['198.18.0.7', '80'], { MARK: m });
      assert.equal(r.code, 2, `MARK=${JSON.stringify(m)}: ${r.stdout}`);
    }
    for (const m of ['zz', '-1', '0x', '4294967296', '1.5', '0x1ffffffff']) {
      const r = plugin(['198.18.0.7', '80'], { MARK: m });
      assert.equal(r.code, 3, `MARK=${m}`);
      assert.match(r.stdout, /^TCP UNKNOWN - invalid MARK "/);
    }
  });

  test('targets: literals as given with their canonical address; names by -4/-6; failures CRITICAL naming the host', () => {
    noRoute(['2001:2:0:0::7', '80'], '2001:2:0:0::7 (2001:2::7) port 80');
    noRoute(['::ffff:198.18.0.7', '80'], '::ffff:198.18.0.7 (198.18.0.7) port 80');
    noRoute(['-4', 'backend.example', '80'], 'backend.example (198.18.0.8) port 80');
    noRoute(['-6', 'backend.example', '80'], 'backend.example (2001:2::8) port 80');
    const r = plugin(['-6', 'v4only.example', '80', '-t', '2']);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /^TCP CRITICAL - .*v4only\.example/);
  });

  test('halfopen check is the plugin: the same stdout and exit code', () => {
    for (const a of [['198.18.0.7', '80', '--json'], ['-6', '198.18.0.7', '80'], ['--help'], ['198.18.0.7']]) {
      const n = plugin(a), h = plugin(a, {}, 'node');
      assert.equal(h.code, n.code, a.join(' '));
      assert.equal(h.stdout.replace(/"ts":"[^"]*"|time=\d+\.\d+s/g, ''), n.stdout.replace(/"ts":"[^"]*"|time=\d+\.\d+s/g, ''), a.join(' '));
    }
  });
});
