import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ErrorCode, HalfopenError } from '../../src/errors';
import { formatAddress, parseAddress } from '../../src/targets/address';
import {
  AddrRange, LookupFn, ParsedSpec, parseExcludeList, parseExcludeSpec, parseTargetSpec,
  readExcludeFile, readTargetFile, resolveHosts,
} from '../../src/targets/target-set';

const A = (s: string): bigint => {
  const a = parseAddress(s);
  assert.notEqual(a, null, s);
  return a as bigint;
};
const show = (r: AddrRange): string => `${formatAddress(r.lo)}-${formatAddress(r.hi)}`;

const fails = (code: ErrorCode, re: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof HalfopenError, String(e));
  assert.equal(e.code, code);
  assert.match(e.message, re);
  assert.ok(!e.message.includes('\n'));
  return true;
};

const range = (spec: string): string => {
  const p = parseTargetSpec(spec);
  assert.equal(p.kind, 'range', spec);
  return show((p as Extract<ParsedSpec, { kind: 'range' }>).range);
};

describe('parseTargetSpec', () => {
  test('single addresses', () => {
    assert.equal(range('198.18.0.7'), '198.18.0.7-198.18.0.7');
    assert.equal(range('2001:db8::1'), '2001:db8::1-2001:db8::1');
    assert.equal(range(' 10.0.0.1 '), '10.0.0.1-10.0.0.1');
    assert.equal(range('[2001:db8::1]'), '2001:db8::1-2001:db8::1');
    // An unbracketed v6 whose last group looks like a port is still an address.
    assert.equal(range('2001:db8::1:80'), '2001:db8::1:80-2001:db8::1:80');
  });

  test('CIDR, with host bits masked off', () => {
    assert.equal(range('198.18.0.0/16'), '198.18.0.0-198.18.255.255');
    assert.equal(range('198.18.1.2/16'), '198.18.0.0-198.18.255.255');
    assert.equal(range('10.1.2.3/32'), '10.1.2.3-10.1.2.3');
    assert.equal(range('10.1.2.3/31'), '10.1.2.2-10.1.2.3');
    assert.equal(range('1.2.3.4/0'), '0.0.0.0-255.255.255.255');
    assert.equal(range('2001:2::/64'), '2001:2::-2001:2::ffff:ffff:ffff:ffff');
    assert.equal(range('2001:2::1234/120'), '2001:2::1200-2001:2::12ff');
    assert.equal(range('::ffff:10.0.0.0/104'), '10.0.0.0-10.255.255.255');
    assert.equal(range('::/0'), '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
  });

  test('ranges a-b and the a.b.c.d-N short form', () => {
    assert.equal(range('198.18.0.1-198.18.0.20'), '198.18.0.1-198.18.0.20');
    assert.equal(range('198.18.0.1-20'), '198.18.0.1-198.18.0.20');
    assert.equal(range('198.18.0.1-1'), '198.18.0.1-198.18.0.1');
    assert.equal(range('10.0.0.255-10.0.1.0'), '10.0.0.255-10.0.1.0');
    assert.equal(range('2001:db8::1-2001:db8::ff'), '2001:db8::1-2001:db8::ff');
  });

  test('host:port, [v6]:port and hostnames', () => {
    assert.deepEqual(parseTargetSpec('198.18.0.7:80'), { kind: 'pair', addr: A('198.18.0.7'), port: 80 });
    assert.deepEqual(parseTargetSpec('[2001:db8::1]:8080'), { kind: 'pair', addr: A('2001:db8::1'), port: 8080 });
    assert.deepEqual(parseTargetSpec('[::ffff:1.2.3.4]:22'), { kind: 'pair', addr: A('1.2.3.4'), port: 22 });
    assert.deepEqual(parseTargetSpec('Example.COM:443'), { kind: 'host', name: 'example.com', port: 443 });
    assert.deepEqual(parseTargetSpec('example.com'), { kind: 'host', name: 'example.com' });
    assert.deepEqual(parseTargetSpec('web-01'), { kind: 'host', name: 'web-01' });
    assert.deepEqual(parseTargetSpec('web-01.lb.internal.'), { kind: 'host', name: 'web-01.lb.internal.' });
    assert.deepEqual(parseTargetSpec('localhost:22'), { kind: 'host', name: 'localhost', port: 22 });
    assert.deepEqual(parseTargetSpec('1.2.3.4.example'), { kind: 'host', name: '1.2.3.4.example' });
  });

  test('the generic error names the spec and every accepted form', () => {
    assert.throws(() => parseTargetSpec('198.18.0.300'), fails('E_TARGET',
      /^invalid target "198\.18\.0\.300": expected an IPv4\/IPv6 address, CIDR, range a-b, host:port, \[v6\]:port or hostname$/));
    for (const bad of ['', '   ', '1.2.3', '12345', 'a_b.example', '-bad.example', 'bad-.example', 'foo:bar:baz', 'a..b',
      '1.2.3.4:80:90', 'http://example.com', `${'a'.repeat(64)}.example`, 'exa mple.com']) {
      assert.throws(() => parseTargetSpec(bad), fails('E_TARGET', /^invalid target ".*": expected an IPv4\/IPv6 address/), bad);
    }
  });

  test('specific errors for half-right specs', () => {
    const cases: Array<[string, RegExp]> = [
      ['10.0.0.0/33', /prefix length must be 0-32 for IPv4$/],
      ['2001:db8::/129', /prefix length must be 0-128 for IPv6$/],
      ['10.0.0.0/x', /expected an IPv4\/IPv6 address/],
      ['10.0.0.0/', /expected an IPv4\/IPv6 address/],
      ['host/24', /expected an IPv4\/IPv6 address/],
      ['10.0.0.9-10.0.0.1', /range start is greater than end$/],
      ['10.0.0.9-3', /range start is greater than end$/],
      ['10.0.0.1-256', /expected a range a-b/],
      ['10.0.0.1-foo', /expected a range a-b/],
      ['10.0.0.1-::1', /different address families$/],
      ['1.2.3.4:0', /port "0" is not a number 1-65535$/],
      ['1.2.3.4:65536', /port "65536"/],
      ['example.com:', /port "" is not/],
      ['[::1]:0', /port "0"/],
      ['[1.2.3.4]:80', /expected \[IPv6\]:port$/],
      ['[::1', /expected \[IPv6\]:port$/],
      ['[fe80::1%eth0]:80', /expected \[IPv6\]:port$/],
    ];
    for (const [spec, re] of cases) {
      assert.throws(() => parseTargetSpec(spec), fails('E_TARGET', new RegExp(`^invalid target "${spec.replace(/[[\]]/g, '\\$&')}": .*`)), spec);
      assert.throws(() => parseTargetSpec(spec), fails('E_TARGET', re), spec);
    }
  });
});

describe('excludes', () => {
  test('address, CIDR and range', () => {
    assert.equal(show(parseExcludeSpec('10.0.0.1')), '10.0.0.1-10.0.0.1');
    assert.equal(show(parseExcludeSpec('10.0.0.0/8')), '10.0.0.0-10.255.255.255');
    assert.equal(show(parseExcludeSpec('10.0.0.1-5')), '10.0.0.1-10.0.0.5');
    assert.equal(show(parseExcludeSpec('2001:db8::/126')), '2001:db8::-2001:db8::3');
  });

  test('hostnames and pairs are refused', () => {
    for (const bad of ['example.com', '1.2.3.4:80', '[::1]:80', '']) {
      assert.throws(() => parseExcludeSpec(bad), fails('E_TARGET',
        /^invalid exclude ".*": expected an IPv4\/IPv6 address, CIDR or range a-b$/), bad);
    }
    assert.throws(() => parseExcludeSpec('10.0.0.0/40'), fails('E_TARGET', /^invalid exclude "10.0.0.0\/40": prefix length/));
  });

  test('comma lists', () => {
    assert.deepEqual(parseExcludeList('10.0.0.1,192.168.0.0/16').map(show), ['10.0.0.1-10.0.0.1', '192.168.0.0-192.168.255.255']);
    assert.throws(() => parseExcludeList('10.0.0.1,,10.0.0.2'), fails('E_TARGET', /^invalid exclude list "10.0.0.1,,10.0.0.2": empty entry/));
    assert.throws(() => parseExcludeList('10.0.0.1,nope'), fails('E_TARGET', /^invalid exclude "nope"/));
  });
});

describe('readTargetFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'halfopen-targets-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('comments, blanks, several specs per line, CRLF and BOM', () => {
    const file = join(dir, 'targets.txt');
    writeFileSync(file, '\uFEFF# backends\r\n198.18.0.0/24\r\n\r\n   \n10.0.0.1 10.0.0.2\t[::1]:80 # trailing comment\n#10.9.9.9\nexample.com:443#tight\n');
    assert.deepEqual(readTargetFile(file), ['198.18.0.0/24', '10.0.0.1', '10.0.0.2', '[::1]:80', 'example.com:443']);
  });

  test('empty file gives no specs', () => {
    const file = join(dir, 'empty.txt');
    writeFileSync(file, '# nothing here\n\n');
    assert.deepEqual(readTargetFile(file), []);
  });

  test('exclude files parse every spec', () => {
    const file = join(dir, 'excl.txt');
    writeFileSync(file, '10.0.0.0/8 # private\n192.168.1.1-9\n');
    assert.deepEqual(readExcludeFile(file).map(show), ['10.0.0.0-10.255.255.255', '192.168.1.1-192.168.1.9']);
    writeFileSync(file, 'example.com\n');
    assert.throws(() => readExcludeFile(file), fails('E_TARGET', /^invalid exclude "example.com"/));
  });

  test('unreadable file is E_USAGE with the path and errno', () => {
    const missing = join(dir, 'missing.txt');
    assert.throws(() => readTargetFile(missing), (e: unknown) => {
      assert.ok(e instanceof HalfopenError);
      assert.equal(e.code, 'E_USAGE');
      assert.equal(e.message, `cannot read "${missing}": ENOENT`);
      assert.equal(e.syscall, 'open');
      return true;
    });
  });
});

describe('resolveHosts', () => {
  const table: Record<string, Array<{ address: string; family: number }>> = {
    'web.example': [{ address: '198.18.0.10', family: 4 }, { address: '2001:db8::10', family: 6 }],
    'v4only.example': [{ address: '198.18.0.11', family: 4 }],
    'v6only.example': [{ address: '2001:db8::12', family: 6 }],
  };
  const makeLookup = (): { lookup: LookupFn; calls: string[] } => {
    const calls: string[] = [];
    const lookup: LookupFn = async (name, options) => {
      calls.push(name);
      assert.equal(options.all, true);
      const found = table[name];
      if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND', errno: -3008, syscall: 'getaddrinfo' });
      return found;
    };
    return { lookup, calls };
  };

  const specs = (...s: string[]): ParsedSpec[] => s.map(parseTargetSpec);

  test('hostnames become ranges, host:port becomes pairs, literals pass through; each name looked up once', async () => {
    const { lookup, calls } = makeLookup();
    const got = await resolveHosts(specs('198.18.0.0/30', 'web.example', '198.18.0.7:22', 'web.example:443', 'WEB.example'), { lookup });
    assert.deepEqual(calls, ['web.example']);
    assert.deepEqual(got.ranges.map(show), ['198.18.0.0-198.18.0.3', '198.18.0.10-198.18.0.10', '2001:db8::10-2001:db8::10',
      '198.18.0.10-198.18.0.10', '2001:db8::10-2001:db8::10']);
    assert.deepEqual(got.pairs.map((p) => `${formatAddress(p.addr)}:${p.port}`), ['198.18.0.7:22', '198.18.0.10:443', '2001:db8::10:443']);
  });

  test('family filter applies to hostname results', async () => {
    const { lookup } = makeLookup();
    const v6 = await resolveHosts(specs('web.example', '10.0.0.1'), { lookup, family: 6 });
    assert.deepEqual(v6.ranges.map(show), ['2001:db8::10-2001:db8::10', '10.0.0.1-10.0.0.1']);
    await assert.rejects(resolveHosts(specs('v6only.example'), { lookup, family: 4 }),
      fails('E_RESOLVE', /^cannot resolve "v6only.example": no IPv4 addresses$/));
  });

  test('unresolvable names are E_RESOLVE, first in spec order, with a count of the rest', async () => {
    const { lookup } = makeLookup();
    await assert.rejects(resolveHosts(specs('v4only.example', 'nope.example'), { lookup }),
      (e: unknown) => fails('E_RESOLVE', /^cannot resolve "nope.example": ENOTFOUND$/)(e) && (e as HalfopenError).syscall === 'getaddrinfo');
    await assert.rejects(resolveHosts(specs('bad1.example', 'v4only.example', 'bad2.example:80', 'bad3.example'), { lookup, concurrency: 2 }),
      fails('E_RESOLVE', /^cannot resolve "bad1.example": ENOTFOUND \(and 2 more unresolvable\)$/));
  });

  test('no hostnames means no lookups', async () => {
    const { lookup, calls } = makeLookup();
    const got = await resolveHosts(specs('10.0.0.1', '[::1]:80'), { lookup });
    assert.deepEqual(calls, []);
    assert.equal(got.ranges.length, 1);
    assert.equal(got.pairs.length, 1);
  });

  test('many names are all resolved under the concurrency cap', async () => {
    let inFlight = 0, peak = 0;
    const lookup: LookupFn = async (name) => {
      inFlight++; peak = Math.max(peak, inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      return [{ address: `10.0.${name.split('-')[1]}.1`, family: 4 }];
    };
    const names = Array.from({ length: 100 }, (_, i) => `h-${i}`);
    const got = await resolveHosts(specs(...names), { lookup, concurrency: 8 });
    assert.equal(got.ranges.length, 100);
    assert.equal(show(got.ranges[99]), '10.0.99.1-10.0.99.1');
    assert.ok(peak <= 8 && peak > 1, `peak ${peak}`);
  });
});
