// `halfopen check` / check_tcp_half_open without the network: both argument
// forms, MARK, name resolution (injected lookup), the Nagios lines and the
// JSON record, and main() end to end with a fake native check.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HalfopenError } from '../../src/errors';
import {
  parseCheckArgs, parseMark, resolveTarget, formatOutcome, formatJson, main, Outcome, USAGE, LookupFn, CheckArgs,
} from '../../src/cli/check';
import type { CheckOptions, CheckResult } from '../../src/addon/addon';
import { ndjsonWriter } from '../../src/output/ndjson';

const usage = (fn: () => unknown, re: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof HalfopenError && e.code === 'E_USAGE' && re.test(e.message));

const args = (over: Partial<CheckArgs>): CheckArgs => ({ host: '198.18.0.7', port: 80, timeoutS: 5, family: undefined, json: false, ...over });

describe('check arguments', () => {
  test('HOST PORT', () => {
    assert.deepEqual(parseCheckArgs(['198.18.0.7', '80']), args({}));
  });

  test('-H HOST -p PORT with every option', () => {
    assert.deepEqual(parseCheckArgs(['-H', 'backend.example', '-p', '8080', '-t', '2.5', '-4', '--json']),
      args({ host: 'backend.example', port: 8080, timeoutS: 2.5, family: 4, json: true }));
    assert.deepEqual(parseCheckArgs(['-p', '443', '-6', '-H', '2001:2::7']), args({ host: '2001:2::7', port: 443, family: 6 }));
  });

  test('attached and long forms', () => {
    const want = args({ port: 25, timeoutS: 0.5 });
    assert.deepEqual(parseCheckArgs(['-H198.18.0.7', '-p25', '-t0.5']), want);
    assert.deepEqual(parseCheckArgs(['--hostname=198.18.0.7', '--port=25', '--timeout=.5']), want);
    assert.deepEqual(parseCheckArgs(['--hostname', '198.18.0.7', '--port', '25', '--timeout', '0.5']), want);
    assert.deepEqual(parseCheckArgs(['--use-ipv6', '2001:2::7', '25']), args({ host: '2001:2::7', port: 25, family: 6 }));
  });

  test('mixed: -H with a positional port, options after positionals, -- and [v6]', () => {
    assert.deepEqual(parseCheckArgs(['-H', '198.18.0.7', '80']), args({}));
    assert.deepEqual(parseCheckArgs(['198.18.0.7', '80', '-t', '3']), args({ timeoutS: 3 }));
    assert.deepEqual(parseCheckArgs(['--', '198.18.0.7', '80']), args({}));
    assert.deepEqual(parseCheckArgs(['[2001:2::7]', '80']), args({ host: '2001:2::7' }));
  });

  test('-4 twice is fine; the default timeout is 5 s', () => {
    assert.equal((parseCheckArgs(['-4', '-4', 'h', '1']) as CheckArgs).family, 4);
    assert.equal((parseCheckArgs(['h', '1']) as CheckArgs).timeoutS, 5);
  });

  test('-w and -c thresholds, in every form', () => {
    assert.deepEqual(parseCheckArgs(['198.18.0.7', '80', '-w', '0.5', '-c', '1']), { ...args({}), warningS: 0.5, criticalS: 1 });
    assert.deepEqual(parseCheckArgs(['-H', '198.18.0.7', '-p', '80', '--warning=.25', '-c0']), { ...args({}), warningS: 0.25, criticalS: 0 });
    usage(() => parseCheckArgs(['198.18.0.7', '80', '-w', 'x']), /invalid warning threshold "x": expected seconds from 0 to 3600/);
    usage(() => parseCheckArgs(['198.18.0.7', '80', '-c', '3601']), /invalid critical threshold "3601"/);
    usage(() => parseCheckArgs(['198.18.0.7', '80', '-c', '1', '--critical', '2']), /--critical given twice/);
  });

  test('help and version', () => {
    assert.deepEqual(parseCheckArgs(['-h']), { help: true });
    assert.deepEqual(parseCheckArgs(['198.18.0.7', '--help']), { help: true });
    assert.deepEqual(parseCheckArgs(['-V']), { version: true });
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
    ['timeout too long', ['198.18.0.7', '80', '-t', '3601'], /at most 3600/],
    ['flag without value', ['198.18.0.7', '80', '-t'], /-t needs a value/],
    ['unknown option', ['--frobnicate', '198.18.0.7', '80'], /unknown option "--frobnicate"/],
    ['negative port looks like an option', ['198.18.0.7', '-1'], /unknown option "-1"/],
    ['extra argument', ['198.18.0.7', '80', '81'], /unexpected argument "81"/],
    ['host twice', ['-H', 'a', '-H', 'b', '-p', '1'], /-H given twice/],
    ['port twice', ['-H', 'a', '-p', '1', '--port=2'], /--port given twice/],
    ['-4 and -6', ['-4', '-6', 'a', '1'], /-4 and -6 exclude each other/],
  ];
  for (const [name, argv, re] of bad) test(`usage error: ${name}`, () => usage(() => parseCheckArgs(argv), re));
});

describe('MARK', () => {
  test('unset or empty is no mark; decimal and 0x hex', () => {
    assert.equal(parseMark(undefined), 0);
    assert.equal(parseMark(''), 0);
    assert.equal(parseMark('42'), 42);
    assert.equal(parseMark('0x2a'), 42);
    assert.equal(parseMark('0X2A'), 42);
    assert.equal(parseMark(' 0x2a\n'), 42);
    assert.equal(parseMark('4294967295'), 0xffffffff);
  });
  for (const v of ['zz', '-1', '0x', '4294967296', '1.5', '0x1ffffffff'])
    test(`rejects "${v}"`, () => assert.throws(() => parseMark(v), (e: unknown) => e instanceof HalfopenError && /invalid MARK/.test(e.message)));
});

describe('resolving the target', () => {
  const never: LookupFn = () => { throw new Error('lookup must not be called for a literal'); };

  test('address literals skip the resolver', async () => {
    assert.deepEqual(await resolveTarget('198.18.0.7', undefined, never), { ip: '198.18.0.7', family: 4, bytes: Buffer.from([198, 18, 0, 7]) });
    const v6 = await resolveTarget('2001:2:0:0::7', 6, never);
    assert.equal(v6.ip, '2001:2::7');
    assert.equal(v6.family, 6);
    assert.equal(v6.bytes.toString('hex'), '20010002000000000000000000000007');
    // An IPv4-mapped IPv6 literal is that IPv4 address.
    assert.equal((await resolveTarget('::ffff:198.18.0.7', undefined, never)).ip, '198.18.0.7');
  });

  test('a literal of the other family than -4/-6 is a usage error', async () => {
    await assert.rejects(resolveTarget('198.18.0.7', 6, never), (e: unknown) => e instanceof HalfopenError && e.code === 'E_USAGE' && /IPv4 address but -6/.test(e.message));
    await assert.rejects(resolveTarget('2001:2::7', 4, never), /IPv6 address but -4/);
  });

  test('hostnames go through lookup with the family of -4/-6', async () => {
    const calls: Array<[string, number]> = [];
    const lookup: LookupFn = async (host, family) => {
      calls.push([host, family]);
      return family === 4 ? { address: '198.18.0.8', family: 4 } : { address: '2001:2::8', family: 6 };
    };
    assert.equal((await resolveTarget('backend.example', undefined, lookup)).ip, '2001:2::8');
    assert.equal((await resolveTarget('backend.example', 4, lookup)).ip, '198.18.0.8');
    assert.equal((await resolveTarget('backend.example', 6, lookup)).family, 6);
    assert.deepEqual(calls, [['backend.example', 0], ['backend.example', 4], ['backend.example', 6]]);
  });

  test('resolver failures are E_RESOLVE naming the host and the error', async () => {
    const fail: LookupFn = async () => { throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }); };
    await assert.rejects(resolveTarget('nosuch.example', undefined, fail),
      (e: unknown) => e instanceof HalfopenError && e.code === 'E_RESOLVE' && e.message === 'cannot resolve "nosuch.example": ENOTFOUND');
    const wrongFamily: LookupFn = async () => ({ address: '198.18.0.8', family: 4 });
    await assert.rejects(resolveTarget('backend.example', 6, wrongFamily), /no IPv6 address/);
  });
});

const TS = new Date('2026-11-24T16:08:54.601Z');
const result = (over: Partial<CheckResult>): CheckResult =>
  ({ state: 'open', reason: 'syn-ack', rttNs: 41_000, ttl: 64, from: '198.18.0.7', src: '198.19.255.1', sport: 62001, attempts: 1, ...over });
const outcome = (over: Partial<CheckResult>, o: Partial<Outcome> = {}): Outcome =>
  ({ host: '198.18.0.7', ip: '198.18.0.7', port: 80, timeoutS: 5, result: result(over), elapsedNs: 3_000_000, ts: TS, ...o });

describe('check output', () => {
  test('open: TCP OK with the response time and perfdata', () => {
    assert.deepEqual(formatOutcome(outcome({})), {
      code: 0, line: 'TCP OK - 0.000041 second response time on 198.18.0.7 port 80|time=0.000041s;;;0.000000;5.000000',
    });
  });

  test('closed: connection refused', () => {
    assert.deepEqual(formatOutcome(outcome({ state: 'closed', reason: 'rst', rttNs: 35_000 }, { port: 81 })), {
      code: 2, line: 'TCP CRITICAL - Connection refused (RST) on 198.18.0.7 port 81|time=0.000035s;;;0.000000;5.000000',
    });
  });

  test('filtered: no response, how many SYNs in how long', () => {
    const o = outcome({ state: 'filtered', reason: 'no-response', rttNs: null, ttl: null, from: undefined, attempts: 5 }, { elapsedNs: 5_000_211_000 });
    assert.deepEqual(formatOutcome(o), {
      code: 2, line: 'TCP CRITICAL - No response (filtered) on 198.18.0.7 port 80: 5 SYNs in 5.000 seconds|time=5.000211s;;;0.000000;5.000000',
    });
    assert.match(formatOutcome(outcome({ state: 'filtered', reason: 'no-response', rttNs: null, attempts: 1 }, { timeoutS: 0.1 })).line, /1 SYN in/);
  });

  test('ICMP unreachable names type, code and sender, for both families', () => {
    const v4 = outcome({ state: 'unreachable', reason: 'icmp-3-1', icmpType: 3, icmpCode: 1, from: '198.19.255.2', rttNs: 107_000, ttl: 63 });
    assert.deepEqual(formatOutcome(v4), {
      code: 2, line: 'TCP CRITICAL - Host unreachable (ICMP type 3 code 1 from 198.19.255.2) on 198.18.0.7 port 80|time=0.000107s;;;0.000000;5.000000',
    });
    const v6 = outcome({ state: 'unreachable', reason: 'icmp-1-3', icmpType: 1, icmpCode: 3, from: '2001:2:0:ffff::2' }, { host: '2001:2::95', ip: '2001:2::95' });
    assert.match(formatOutcome(v6).line, /^TCP CRITICAL - Address unreachable \(ICMP type 1 code 3 from 2001:2:0:ffff::2\) on 2001:2::95 port 80\|/);
    const prohibited = outcome({ state: 'unreachable', reason: 'icmp-3-13', icmpType: 3, icmpCode: 13, from: '198.19.255.2' });
    assert.match(formatOutcome(prohibited).line, /Communication administratively prohibited \(ICMP type 3 code 13/);
  });

  test('no route and a local firewall drop are CRITICAL too', () => {
    const noRoute = outcome({ state: 'unreachable', reason: 'no-route', rttNs: null, ttl: null, errno: 101, errname: 'ENETUNREACH', attempts: 0 });
    assert.equal(formatOutcome(noRoute).code, 2);
    assert.match(formatOutcome(noRoute).line, /^TCP CRITICAL - No route to host \(ENETUNREACH\) on 198\.18\.0\.7 port 80\|time=0\.003000s/);
    const fw = outcome({ state: 'filtered', reason: 'local-firewall', rttNs: null, errno: 1, errname: 'EPERM' });
    assert.match(formatOutcome(fw).line, /^TCP CRITICAL - SYN dropped by a local firewall rule \(EPERM\)/);
  });

  test('a hostname is shown with its address; the timeout sets the perfdata maximum', () => {
    const line = formatOutcome(outcome({}, { host: 'backend.example', timeoutS: 2.5 })).line;
    assert.equal(line, 'TCP OK - 0.000041 second response time on backend.example (198.18.0.7) port 80|time=0.000041s;;;0.000000;2.500000');
  });

  test('-w/-c: WARNING 1 and CRITICAL 2 above the thresholds, which the perfdata carries', () => {
    const at = (rttNs: number) => formatOutcome(outcome({ rttNs }, { warningS: 0.001, criticalS: 0.01 }));
    assert.deepEqual(at(41_000), {
      code: 0, line: 'TCP OK - 0.000041 second response time on 198.18.0.7 port 80|time=0.000041s;0.001000;0.010000;0.000000;5.000000',
    });
    assert.equal(at(1_000_000).code, 0, 'equal to -w is not above it');
    assert.deepEqual(at(2_000_000), {
      code: 1, line: 'TCP WARNING - 0.002000 second response time on 198.18.0.7 port 80|time=0.002000s;0.001000;0.010000;0.000000;5.000000',
    });
    assert.deepEqual(at(20_000_000), {
      code: 2, line: 'TCP CRITICAL - 0.020000 second response time on 198.18.0.7 port 80|time=0.020000s;0.001000;0.010000;0.000000;5.000000',
    });
    const closed = formatOutcome(outcome({ state: 'closed', reason: 'rst' }, { criticalS: 1 }));
    assert.equal(closed.line, 'TCP CRITICAL - Connection refused (RST) on 198.18.0.7 port 80|time=0.000041s;;1.000000;0.000000;5.000000');
  });

  test('--json is exactly the sweep ndjson record', () => {
    const cases = [
      outcome({}),
      outcome({ state: 'filtered', reason: 'no-response', rttNs: null, ttl: null }),
      outcome({ state: 'unreachable', reason: 'icmp-1-3', icmpType: 1, icmpCode: 3, rttNs: 12_345_678, ttl: 250 }, { ip: '2001:2::95' }),
    ];
    for (const o of cases) {
      const r = o.result;
      const row = ndjsonWriter().row({ ip: o.ip, port: o.port, state: r.state, reason: r.reason, rtt_ms: r.rttNs === null ? null : r.rttNs / 1e6, ttl: r.ttl, ts: o.ts.toISOString() });
      assert.equal(`${formatJson(o)}\n`, row);
    }
    assert.deepEqual(Object.keys(JSON.parse(formatJson(outcome({})))), ['ip', 'port', 'state', 'reason', 'rtt_ms', 'ttl', 'ts']);
    assert.equal(formatJson(outcome({})), '{"ip":"198.18.0.7","port":80,"state":"open","reason":"syn-ack","rtt_ms":0.041,"ttl":64,"ts":"2026-11-24T16:08:54.601Z"}');
  });
});

describe('main() with a fake native check', () => {
  const ALL_CAPS = (1n << 41n) - 1n;
  async function run(argv: string[], over: { check?: (o: CheckOptions) => CheckResult; caps?: bigint; env?: NodeJS.ProcessEnv; lookup?: LookupFn } = {}) {
    let out = '';
    const calls: CheckOptions[] = [];
    const code = await main(argv, {
      write: (s) => { out += s; },
      env: over.env ?? {},
      caps: () => over.caps ?? ALL_CAPS,
      lookup: over.lookup,
      now: () => TS,
      check: (o) => { calls.push(o); return (over.check ?? (() => result({})))(o); },
    });
    return { code, out, calls };
  }

  test('open → 0, one line; the native call gets family, bytes, port, the remaining deadline and the mark', async () => {
    const r = await run(['-H', '198.18.0.7', '-p', '80', '-t', '2'], { env: { MARK: '0x2a' } });
    assert.equal(r.code, 0);
    assert.match(r.out, /^TCP OK - 0\.000041 second response time on 198\.18\.0\.7 port 80\|time=0\.000041s;;;0\.000000;2\.000000\n$/);
    assert.equal(r.calls.length, 1);
    const c = r.calls[0];
    assert.equal(c.family, 4);
    assert.deepEqual([...c.addr], [198, 18, 0, 7]);
    assert.equal(c.port, 80);
    assert.equal(c.mark, 42);
    // The -t deadline: the native call gets what is left of -t 2 (never more; the floor only says it is
    // that remainder and not some other constant, with room for a loaded machine).
    assert.ok(c.timeoutMs > 1000 && c.timeoutMs <= 2000, `timeoutMs ${c.timeoutMs}`);
  });

  test('closed → 2; --json prints the record and keeps the exit code', async () => {
    const r = await run(['198.18.0.7', '81', '--json'], { check: () => result({ state: 'closed', reason: 'rst' }) });
    assert.equal(r.code, 2);
    assert.deepEqual(JSON.parse(r.out), { ip: '198.18.0.7', port: 81, state: 'closed', reason: 'rst', rtt_ms: 0.041, ttl: 64, ts: TS.toISOString() });
  });

  test('usage error → 3 with the message and a usage line; nothing is sent', async () => {
    const r = await run(['198.18.0.7', 'http']);
    assert.equal(r.code, 3);
    assert.deepEqual(r.out.split('\n'), ['TCP UNKNOWN - invalid port "http": expected a number from 1 to 65535', USAGE, '']);
    assert.equal(r.calls.length, 0);
  });

  test('--help → 0 with the usage; bad MARK → 3', async () => {
    const h = await run(['--help']);
    assert.equal(h.code, 0);
    assert.ok(h.out.startsWith(USAGE));
    const m = await run(['198.18.0.7', '80'], { env: { MARK: 'zz' } });
    assert.equal(m.code, 3);
    assert.match(m.out, /^TCP UNKNOWN - invalid MARK "zz"/);
  });

  test('without CAP_NET_RAW → 3 naming it, before any lookup or send', async () => {
    const lookup: LookupFn = () => { throw new Error('no lookup without privileges'); };
    const r = await run(['backend.example', '80'], { caps: ALL_CAPS & ~(1n << 13n), lookup });
    assert.equal(r.code, 3);
    assert.match(r.out, /^TCP UNKNOWN - the half-open check needs CAP_NET_RAW/);
    assert.equal(r.out.trim().split('\n').length, 1);
    assert.equal(r.calls.length, 0);
  });

  test('a native privilege error is UNKNOWN too', async () => {
    const r = await run(['198.18.0.7', '80'], { check: () => { throw new HalfopenError('E_PRIVILEGE', 'setting MARK (SO_MARK) needs CAP_NET_ADMIN'); } });
    assert.equal(r.code, 3);
    assert.equal(r.out, 'TCP UNKNOWN - setting MARK (SO_MARK) needs CAP_NET_ADMIN\n');
  });

  test('an unresolvable name → 2 CRITICAL, like check_tcp', async () => {
    const lookup: LookupFn = async () => { throw Object.assign(new Error('x'), { code: 'ENOTFOUND' }); };
    const r = await run(['nosuch.example', '80'], { lookup });
    assert.equal(r.code, 2);
    assert.match(r.out, /^TCP CRITICAL - cannot resolve "nosuch\.example": ENOTFOUND\|time=/);
    const j = await run(['nosuch.example', '80', '--json'], { lookup });
    assert.equal(j.code, 2);
    assert.equal(JSON.parse(j.out).reason, 'dns-failure');
  });

  test('a resolver slower than the deadline → 2 at the deadline', async () => {
    const lookup: LookupFn = () => new Promise(() => { /* never */ });
    const t0 = Date.now();
    const r = await run(['slow.example', '80', '-t', '0.2'], { lookup });
    const ms = Date.now() - t0;
    assert.equal(r.code, 2);
    assert.match(r.out, /^TCP CRITICAL - resolving "slow\.example" took longer than the 0\.2 s deadline/);
    // The -t deadline (-t 0.2): not before it, and at it; the ceiling is generous for a loaded machine.
    assert.ok(ms >= 190 && ms < 1700, `${ms} ms`);
    assert.equal(r.calls.length, 0);
  });

  test('a hostname resolved with -6 reaches the native check as IPv6', async () => {
    const lookup: LookupFn = async (_h, f) => (f === 6 ? { address: '2001:2::7', family: 6 } : { address: '198.18.0.7', family: 4 });
    const r = await run(['-6', 'backend.example', '80'], { lookup, check: () => result({ from: '2001:2::7' }) });
    assert.equal(r.code, 0);
    assert.equal(r.calls[0].family, 6);
    assert.equal(r.calls[0].addr.length, 16);
    assert.match(r.out, /on backend\.example \(2001:2::7\) port 80/);
  });
});
