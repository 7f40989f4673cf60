import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, HalfopenError } from '../../src/errors';
import { formatAddress, parseAddress, V4_MAX, V4_MIN } from '../../src/targets/address';
import { AddrPort, ProbeSpace, ProbeSpaceInput } from '../../src/targets/probe-space';
import { AddrRange, mergeRanges, splitByFamily, subtractRanges } from '../../src/targets/ranges';
import { parseExcludeSpec, parseTargetSpec } from '../../src/targets/target-set';

const A = (s: string): bigint => parseAddress(s) as bigint;
const R = (spec: string): AddrRange => parseExcludeSpec(spec);
const show = (r: AddrRange): string => `${formatAddress(r.lo)}-${formatAddress(r.hi)}`;
const P = (s: string): AddrPort => {
  const p = parseTargetSpec(s);
  assert.equal(p.kind, 'pair');
  return p as AddrPort & { kind: 'pair' };
};
const probe = (p: AddrPort): string => `${formatAddress(p.addr)}:${p.port}`;
const all = (s: ProbeSpace): string[] => Array.from({ length: s.size }, (_, i) => probe(s.at(i)));

const fails = (code: ErrorCode, re: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof HalfopenError, String(e));
  assert.equal(e.code, code);
  assert.match(e.message, re);
  return true;
};

const space = (ranges: string[], ports: number[], extra: Omit<ProbeSpaceInput, 'ranges' | 'ports'> = {}): ProbeSpace =>
  new ProbeSpace({ ranges: ranges.map(R), ports, ...extra });

describe('interval arithmetic', () => {
  test('merge coalesces overlaps, containment, duplicates and adjacency, and sorts', () => {
    const merged = mergeRanges(['10.0.0.21-30', '10.0.0.5-20', '10.0.0.0-10', '10.0.0.40-50', '10.0.0.42', '10.0.0.40-50', '::1', '::2'].map(R));
    assert.deepEqual(merged.map(show), ['::1-::2', '10.0.0.0-10.0.0.30', '10.0.0.40-10.0.0.50']);
  });

  test('merge does not touch its input', () => {
    const input = [R('10.0.0.0-5'), R('10.0.0.3-9')];
    mergeRanges(input);
    assert.deepEqual(input.map(show), ['10.0.0.0-10.0.0.5', '10.0.0.3-10.0.0.9']);
  });

  test('subtract: middle, edges, whole, spanning holes, disjoint', () => {
    const sub = (rs: string[], hs: string[]): string[] => subtractRanges(mergeRanges(rs.map(R)), mergeRanges(hs.map(R))).map(show);
    assert.deepEqual(sub(['10.0.0.0/24'], ['10.0.0.100']), ['10.0.0.0-10.0.0.99', '10.0.0.101-10.0.0.255']);
    assert.deepEqual(sub(['10.0.0.0/24'], ['10.0.0.0-9']), ['10.0.0.10-10.0.0.255']);
    assert.deepEqual(sub(['10.0.0.0/24'], ['10.0.0.250-10.0.1.5']), ['10.0.0.0-10.0.0.249']);
    assert.deepEqual(sub(['10.0.0.0/24'], ['10.0.0.0/16']), []);
    assert.deepEqual(sub(['10.0.0.0/24'], ['10.0.1.0/24', '9.0.0.0/8']), ['10.0.0.0-10.0.0.255']);
    assert.deepEqual(sub(['10.0.0.0-10', '10.0.0.20-30', '10.0.0.40-50'], ['10.0.0.5-10.0.0.45']), ['10.0.0.0-10.0.0.4', '10.0.0.46-10.0.0.50']);
    assert.deepEqual(sub(['10.0.0.0/24'], ['10.0.0.1', '10.0.0.3', '10.0.0.5-254']), ['10.0.0.0-10.0.0.0', '10.0.0.2-10.0.0.2', '10.0.0.4-10.0.0.4', '10.0.0.255-10.0.0.255']);
    assert.deepEqual(sub([], ['10.0.0.0/8']), []);
  });

  test('merge and subtract agree with brute force on random small sets', () => {
    let seed = 12345;
    const rnd = (k: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % k; };
    const randomRanges = (count: number): AddrRange[] => Array.from({ length: count }, () => {
      const lo = rnd(64);
      return { lo: BigInt(lo), hi: BigInt(lo + rnd(12)) };
    });
    const members = (rs: readonly AddrRange[]): Set<number> => {
      const s = new Set<number>();
      for (const r of rs) for (let a = r.lo; a <= r.hi; a++) s.add(Number(a));
      return s;
    };
    for (let round = 0; round < 500; round++) {
      const rs = randomRanges(rnd(6));
      const hs = randomRanges(rnd(6));
      const merged = mergeRanges(rs);
      assert.deepEqual(members(merged), members(rs));
      for (let k = 1; k < merged.length; k++) assert.ok(merged[k].lo > merged[k - 1].hi + 1n, 'sorted, disjoint, non-adjacent');
      const diff = subtractRanges(merged, mergeRanges(hs));
      const holes = members(hs);
      assert.deepEqual(members(diff), new Set([...members(rs)].filter((a) => !holes.has(a))));
      for (let k = 1; k < diff.length; k++) assert.ok(diff[k].lo > diff[k - 1].hi, 'sorted, disjoint');
    }
  });

  test('splitByFamily cuts at the edges of the IPv4-mapped block', () => {
    const pieces = splitByFamily([{ lo: V4_MIN - 2n, hi: V4_MAX + 2n }, { lo: 1n, hi: 5n }]);
    assert.deepEqual(pieces, [
      { lo: V4_MIN - 2n, hi: V4_MIN - 1n }, { lo: V4_MIN, hi: V4_MAX }, { lo: V4_MAX + 1n, hi: V4_MAX + 2n }, { lo: 1n, hi: 5n },
    ]);
  });
});

describe('ProbeSpace', () => {
  test('address-major order over merged ranges', () => {
    const s = space(['198.18.0.2-3', '198.18.0.1', '::1'], [443, 80]);
    assert.equal(s.size, 8);
    assert.deepEqual(all(s), ['::1:80', '::1:443', '198.18.0.1:80', '198.18.0.1:443', '198.18.0.2:80', '198.18.0.2:443', '198.18.0.3:80', '198.18.0.3:443']);
    assert.deepEqual([...s.families].sort(), [4, 6]);
    assert.equal(s.addressCount, 4);
    assert.equal(s.rangeProbes, 8);
  });

  test('at() is a bijection onto ranges × ports ∪ pairs', () => {
    const s = space(['10.0.0.0/28', '10.0.0.8-10.0.0.40', '2001:db8::/124', '10.0.1.0/30'], [22, 80, 443],
      { pairs: [P('10.0.0.1:8080'), P('192.0.2.1:80')], excludes: [R('10.0.0.20-25')] });
    const expected = new Set<string>();
    const addrs: bigint[] = [];
    for (let a = A('10.0.0.0'); a <= A('10.0.0.40'); a++) if (a < A('10.0.0.20') || a > A('10.0.0.25')) addrs.push(a);
    for (let a = A('10.0.1.0'); a <= A('10.0.1.3'); a++) addrs.push(a);
    for (let a = A('2001:db8::'); a <= A('2001:db8::f'); a++) addrs.push(a);
    for (const a of addrs) for (const p of [22, 80, 443]) expected.add(probe({ addr: a, port: p }));
    expected.add('10.0.0.1:8080');
    expected.add('192.0.2.1:80');
    const got = all(s);
    assert.equal(got.length, expected.size);
    assert.equal(new Set(got).size, got.length);
    assert.deepEqual(new Set(got), expected);
    for (const g of got) {
      const [, addr, port] = /^(.*):(\d+)$/.exec(g) as RegExpExecArray;
      assert.ok(s.has(A(addr), Number(port)), g);
    }
    assert.equal(s.has(A('10.0.0.20'), 80), false);
    assert.equal(s.has(A('10.0.0.1'), 8081), false);
    assert.equal(s.has(A('192.0.2.1'), 443), false);
  });

  test('excludes: middle, edges, whole family, mixed v4+v6', () => {
    assert.deepEqual(space(['10.0.0.0/29'], [80], { excludes: [R('10.0.0.3-4')] }).ranges.map(show), ['10.0.0.0-10.0.0.2', '10.0.0.5-10.0.0.7']);
    assert.deepEqual(space(['10.0.0.0/29'], [80], { excludes: [R('10.0.0.0'), R('10.0.0.7')] }).ranges.map(show), ['10.0.0.1-10.0.0.6']);
    const mixed = space(['10.0.0.0/30', '2001:db8::/126'], [80], { excludes: [R('2001:db8::/64')] });
    assert.deepEqual(mixed.ranges.map(show), ['10.0.0.0-10.0.0.3']);
    assert.deepEqual([...mixed.families], [4]);
    const mixed2 = space(['10.0.0.0/30', '2001:db8::/126'], [80], { excludes: [R('0.0.0.0/0'), R('2001:db8::1')] });
    assert.deepEqual(mixed2.ranges.map(show), ['2001:db8::-2001:db8::', '2001:db8::2-2001:db8::3']);
    assert.deepEqual([...mixed2.families], [6]);
    assert.equal(mixed2.size, 3);
  });

  test('everything excluded is E_EMPTY', () => {
    assert.throws(() => space(['10.0.0.0/24'], [80], { excludes: [R('10.0.0.0/8')] }), fails('E_EMPTY', /^no targets left after excludes$/));
    assert.throws(() => space(['10.0.0.1'], [80], { pairs: [P('10.0.0.2:80')], excludes: [R('10.0.0.1-2')] }), fails('E_EMPTY', /no targets left/));
    assert.throws(() => new ProbeSpace({ ranges: [], ports: [80] }), fails('E_EMPTY', /^no targets given$/));
  });

  test('pairs: deduped, dropped when covered by ranges × ports or excluded, appended sorted', () => {
    const s = space(['10.0.0.0/30'], [80], {
      pairs: [P('10.0.0.9:22'), P('10.0.0.1:80'), P('10.0.0.9:22'), P('10.0.0.1:443'), P('[::1]:80'), P('172.16.0.1:80')],
      excludes: [R('172.16.0.0/12')],
    });
    assert.deepEqual(s.pairs.map(probe), ['::1:80', '10.0.0.1:443', '10.0.0.9:22']);
    assert.equal(s.size, 4 + 3);
    assert.deepEqual(all(s).slice(4), ['::1:80', '10.0.0.1:443', '10.0.0.9:22']);
  });

  test('pairs alone need no ports', () => {
    const s = new ProbeSpace({ pairs: [P('10.0.0.1:80'), P('10.0.0.1:80')] });
    assert.equal(s.size, 1);
    assert.deepEqual(all(s), ['10.0.0.1:80']);
    assert.deepEqual([...s.families], [4]);
  });

  test('ranges without ports are E_TARGET; bad ports and reversed ranges rejected', () => {
    assert.throws(() => space(['10.0.0.1'], []), fails('E_TARGET', /without any port/));
    assert.throws(() => space(['10.0.0.1'], [0]), fails('E_TARGET', /invalid port 0/));
    assert.throws(() => new ProbeSpace({ ranges: [{ lo: 5n, hi: 4n }], ports: [80] }), fails('E_TARGET', /start is greater than end/));
    assert.throws(() => new ProbeSpace({ pairs: [{ addr: 1n, port: 70000 }] }), fails('E_TARGET', /invalid port 70000/));
  });

  test('unsorted, duplicate ports are normalised', () => {
    assert.deepEqual(space(['10.0.0.1'], [443, 80, 443]).ports, [80, 443]);
  });

  test('a range crossing the IPv4-mapped block is split and both families reported', () => {
    const s = new ProbeSpace({ ranges: [{ lo: V4_MIN - 1n, hi: V4_MIN }], ports: [80] });
    assert.equal(s.ranges.length, 2);
    assert.deepEqual(all(s), ['::fffe:ffff:ffff:80', '0.0.0.0:80']);
    assert.deepEqual([...s.families].sort(), [4, 6]);
  });

  test('huge spaces are interval arithmetic, not enumeration', () => {
    const t0 = process.hrtime.bigint();
    const s = space(['0.0.0.0/0'], [80, 443], { excludes: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '0.0.0.0/8'].map(R) });
    const addrs = 2 ** 32 - 2 ** 24 - 2 ** 20 - 2 ** 16 - 2 ** 24;
    assert.equal(s.size, addrs * 2);
    assert.equal(probe(s.at(0)), '1.0.0.0:80');
    assert.equal(probe(s.at(1)), '1.0.0.0:443');
    assert.equal(probe(s.at(s.size - 1)), '255.255.255.255:443');
    const ten = space(['10.0.0.0/8'], Array.from({ length: 16 }, (_, i) => 1000 + i));
    assert.equal(ten.size, 2 ** 24 * 16);
    assert.equal(probe(ten.at(ten.size - 1)), '10.255.255.255:1015');
    assert.equal(probe(ten.at(16 * 257 + 3)), '10.0.1.1:1003');
    // Interval arithmetic: a handful of ranges, not 8 billion probes. The time bound is not a speed
    // target (bench/ has those): enumerating this space would take hours, so 20 s proves none happened.
    assert.ok(s.ranges.length <= 8 && ten.ranges.length === 1, `${s.ranges.length} ranges`);
    assert.ok(Number(process.hrtime.bigint() - t0) / 1e6 < 20_000, 'no enumeration');
  });

  test('exactly 2^53 probes is allowed and indexes exactly; more is too large', () => {
    const s = space(['2001:db8::/75'], [80]);
    assert.equal(s.size, 2 ** 53);
    assert.equal(probe(s.at(2 ** 53 - 1)), '2001:db8::1f:ffff:ffff:ffff:80');
    assert.equal(probe(s.at(2 ** 53 - 2)), '2001:db8::1f:ffff:ffff:fffe:80');
    // Near 2^53 a floating division would misplace the port; check the exact path.
    const t = space(['2001:db8::/82'], Array.from({ length: 127 }, (_, k) => k + 1));
    assert.equal(t.size, 2 ** 46 * 127);
    assert.equal(probe(t.at(t.size - 1)), '2001:db8::3fff:ffff:ffff:127');
    const i = t.size - 128; // address index 2^46 - 2, port index 126
    assert.equal(probe(t.at(i)), '2001:db8::3fff:ffff:fffe:127');
    assert.equal(probe(t.at(i + 1)), '2001:db8::3fff:ffff:ffff:1');

    assert.throws(() => space(['2001:db8::/75'], [80, 443]), fails('E_TARGET', /^target space too large: 18014398509481984 probes exceeds the limit of 2\^53/));
    assert.throws(() => space(['2001:db8::/64'], [80]), fails('E_TARGET', /too large/));
    assert.throws(() => space(['::/0'], [80]), fails('E_TARGET', /too large/));
    // Excludes are applied before the size check, so a big block can be carved down.
    const carved = space(['2001:db8::/64'], [80], { excludes: [R('2001:db8::100-2001:db8::ffff:ffff:ffff:ffff')] });
    assert.equal(carved.size, 256);
  });

  test('at() rejects bad indices', () => {
    const s = space(['10.0.0.0/30'], [80]);
    for (const i of [-1, 4, 1.5, NaN, Infinity]) assert.throws(() => s.at(i), RangeError, String(i));
  });

  test('writeTo() writes what at() returns: IPv4 as a number, IPv6 and pairs as bigints', () => {
    const s = space(['10.0.0.0/28', '2001:db8::/126', '::ffff:0:0/127', '255.255.255.254/31'], [22, 80],
      { pairs: [P('192.0.2.1:8080'), P('[2001:db8::1:5]:443')], excludes: [R('10.0.0.3')] });
    const written: string[] = [];
    const sink = {
      setV4: (slot: number, a: number, port: number, sport: number) => { written[slot] = `${formatAddress(V4_MIN + BigInt(a))}:${port}/${sport}`; },
      set: (slot: number, addr: bigint, port: number, sport: number) => { written[slot] = `${probe({ addr, port })}/${sport}`; },
    };
    let v4 = 0;
    const counting = { ...sink, setV4: (slot: number, a: number, port: number, sport: number) => { v4++; sink.setV4(slot, a, port, sport); } };
    for (let i = 0; i < s.size; i++) s.writeTo(counting, s.size - 1 - i, i, 1000 + i);
    assert.deepEqual(written, all(s).map((p, i) => `${p}/${1000 + i}`).reverse());
    assert.equal(v4, (15 + 2 + 2) * 2, 'every IPv4 range probe took the number path');
    assert.throws(() => s.writeTo(sink, 0, s.size, 0), RangeError);
  });

  test('rebuilding from ranges, ports and pairs gives the same space', () => {
    const s = space(['10.0.0.0/28', '2001:db8::/126'], [22, 80], { pairs: [P('192.0.2.1:8080')], excludes: [R('10.0.0.3')] });
    const copy = new ProbeSpace(structuredClone({ ranges: s.ranges, ports: s.ports, pairs: s.pairs }));
    assert.equal(copy.size, s.size);
    assert.deepEqual(all(copy), all(s));
  });

});

describe('ProbeSpace.indexOf: at()\'s inverse, which merge marks its bitset with', () => {
  const space = new ProbeSpace({
    ranges: [R('198.18.0.0/28'), R('198.18.1.7-198.18.1.9'), R('2001:2::/126'), R('10.0.0.0/31')],
    ports: [443, 80, 8080],
    pairs: [P('198.18.9.9:22'), P('[2001:2::ff]:25'), P('198.18.0.3:80'), P('198.18.0.3:22')],
    excludes: [R('198.18.0.4/30')],
  });

  test('indexOf(at(i)) = i for every probe, ranges and pairs, IPv4 and IPv6', () => {
    for (let i = 0; i < space.size; i++) {
      const p = space.at(i);
      assert.equal(space.indexOf(p.addr, p.port), i, probe(p));
    }
  });

  test('-1 for what is not a probe: an excluded address, another port, an address outside, a pair port on a range address', () => {
    assert.equal(space.indexOf(A('198.18.0.5'), 80), -1, 'excluded');
    assert.equal(space.indexOf(A('198.18.0.1'), 81), -1, 'port not swept');
    assert.equal(space.indexOf(A('198.18.2.1'), 80), -1, 'outside the ranges');
    assert.equal(space.indexOf(A('198.18.0.2'), 22), -1, 'port 22 only for the pair 198.18.0.3');
    assert.notEqual(space.indexOf(A('198.18.0.3'), 22), -1, 'the pair itself');
    assert.equal(space.indexOf(A('198.18.9.9'), 23), -1);
  });
});
