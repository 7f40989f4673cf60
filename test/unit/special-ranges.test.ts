// The default exclusions (src/targets/special-ranges.ts) and the size guard
// (src/sweep/space.ts): each row of the table, its IPv4-mapped form, overlaps
// with the user's excludes, and the guard's arithmetic at its boundary.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HalfopenError } from '../../src/errors';
import { formatAddress, mustParseAddress } from '../../src/targets/address';
import { DEFAULT_EXCLUSIONS, specialRangeOf, whollyExcluded } from '../../src/targets/special-ranges';
import { buildSpace, LARGE_SWEEP, SpaceSpec } from '../../src/sweep/space';

const usage = (re: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof HalfopenError, String(e));
  assert.equal(e.code, 'E_USAGE');
  assert.match(e.message, re);
  assert.ok(!e.message.includes('\n'), 'one line');
  return true;
};

const space = (targets: string[], more: Partial<SpaceSpec> = {}) => buildSpace({ targets, ports: '80', ...more });

/** The first and last address of each row, the ones just outside, and its v4-mapped spelling. */
const TABLE: [cidr: string, first: string, last: string, below: string | null, above: string | null][] = [
  ['::/128', '::', '::', null, '::2'],
  ['::1/128', '::1', '::1', '::', '::2'],
  ['0.0.0.0/8', '0.0.0.0', '0.255.255.255', null, '1.0.0.0'],
  ['127.0.0.0/8', '127.0.0.0', '127.255.255.255', '126.255.255.255', '128.0.0.0'],
  ['169.254.0.0/16', '169.254.0.0', '169.254.255.255', '169.253.255.255', '169.255.0.0'],
  ['224.0.0.0/4', '224.0.0.0', '239.255.255.255', '223.255.255.255', null],
  ['240.0.0.0/4', '240.0.0.0', '255.255.255.255', null, null],
  ['fe80::/10', 'fe80::', 'febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'fec0::'],
  ['ff00::/8', 'ff00::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', null],
];

describe('default exclusions', () => {
  test('the table has exactly the rows of the issue, each with a reason and a registry', () => {
    assert.deepEqual(DEFAULT_EXCLUSIONS.map((r) => r.cidr), TABLE.map((t) => t[0]));
    for (const r of DEFAULT_EXCLUSIONS) {
      assert.ok(r.reason.length > 10, r.cidr);
      assert.match(r.source, /IANA .* Registry, RFC \d+/, r.cidr);
    }
  });

  for (const [cidr, first, last, below, above] of TABLE) {
    test(`${cidr}: its ends are excluded, the neighbours are not`, () => {
      assert.equal(specialRangeOf(mustParseAddress(first))?.cidr, cidr);
      assert.equal(specialRangeOf(mustParseAddress(last))?.cidr, cidr);
      // Neighbours fall into no row, or into the adjacent one (0.0.0.0/8 follows ::1 in 128-bit order only via the mapped block).
      if (below) assert.notEqual(specialRangeOf(mustParseAddress(below))?.cidr, cidr);
      if (above) assert.notEqual(specialRangeOf(mustParseAddress(above))?.cidr, cidr);
      assert.ok(whollyExcluded({ lo: mustParseAddress(first), hi: mustParseAddress(last) }));
    });
  }

  test('v4-mapped IPv6 spellings are excluded as their IPv4 addresses are', async () => {
    for (const t of ['::ffff:127.0.0.1', '::ffff:224.0.0.1', '::ffff:255.255.255.255', '::ffff:169.254.1.1', '::ffff:0.0.0.1', '::ffff:7f00:1'])
      await assert.rejects(space([t]), usage(/^target "[^"]+" is inside the default exclusions, [0-9./]+ \(/), t);
    // A v4-mapped /104 is 127.0.0.0/8 spelled in IPv6.
    await assert.rejects(space(['::ffff:127.0.0.0/104']), usage(/127\.0\.0\.0\/8/));
    const ok = await space(['::ffff:198.18.0.1']);
    assert.equal(ok.space.size, 1);
  });

  test('each address the issue saw probed is refused, with one line naming its row', async () => {
    for (const [t, row] of [['224.0.0.0/30', '224.0.0.0/4'], ['127.0.0.0/30', '127.0.0.0/8'], ['0.0.0.0/30', '0.0.0.0/8'], ['255.255.255.255', '240.0.0.0/4'],
      ['169.254.0.0/30', '169.254.0.0/16'], ['ff02::1', 'ff00::/8'], ['::1', '::1/128'], ['::', '::/128'], ['fe80::1', 'fe80::/10'], ['[::1]:80', '::1/128'], ['127.0.0.1:22', '127.0.0.0/8']])
      await assert.rejects(space([t]), usage(new RegExp(`^target "${t.replace(/[.[\]]/g, '\\$&')}" is inside the default exclusions, ${row.replace(/\./g, '\\.')} .*--no-default-excludes`)), t);
  });

  test('--no-default-excludes lifts them', async () => {
    const s = await space(['127.0.0.0/30', 'ff02::1'], { defaultExcludes: false });
    assert.equal(s.space.size, 5);
    assert.equal(s.excludedByDefault, 0n);
    assert.deepEqual(s.excludedRows, []);
  });

  test('a target that only overlaps them loses the overlap, counted per row', async () => {
    const s = await space(['126.255.255.254/31', '127.0.0.0/30', '198.18.0.1'], { targets: ['126.255.255.254-128.0.0.1', '198.18.0.1'] });
    // 126.255.255.254, .255, 128.0.0.0, 128.0.0.1 and 198.18.0.1 stay; the whole 127/8 goes.
    assert.equal(s.space.size, 5);
    assert.equal(s.excludedByDefault, 2n ** 24n);
    assert.deepEqual(s.excludedRows.map((r) => [r.row.cidr, r.addresses]), [['127.0.0.0/8', 2n ** 24n]]);
    const ips = Array.from({ length: s.space.size }, (_, i) => formatAddress(s.space.at(i).addr));
    assert.deepEqual(ips, ['126.255.255.254', '126.255.255.255', '128.0.0.0', '128.0.0.1', '198.18.0.1']);
  });

  test('overlaps with the user\'s excludes are counted once, as the user\'s', async () => {
    // The user already excludes 127.0.0.0/9: the defaults take only the other half.
    const s = await space(['126.0.0.0-128.255.255.255'], { exclude: ['127.0.0.0/9'], allowLarge: true });
    assert.equal(s.excludedByDefault, 2n ** 23n);
    assert.equal(s.space.addressCount, 3 * 2 ** 24 - 2 ** 24);
    // A user exclude covering a row wholly: the defaults take nothing more.
    const t = await space(['126.0.0.0-128.255.255.255'], { exclude: ['127.0.0.0/8'], allowLarge: true });
    assert.equal(t.excludedByDefault, 0n);
    assert.equal(t.fingerprint === s.fingerprint, false);
  });

  test('pairs and several ports are counted as probes', async () => {
    // 127.0.0.0-1 on two ports: 4 probes; 198.18.0.0/31 and 126.255.255.255 stay, with the pair 198.18.0.9:22.
    const s = await buildSpace({ targets: ['198.18.0.0/31', '126.255.255.255-127.0.0.1', '198.18.0.9:22'], ports: '80,443' });
    assert.equal(s.excludedByDefault, 4n);
    assert.equal(s.space.size, 3 * 2 + 1);
    assert.equal(s.addresses, 4n);
    assert.deepEqual(s.excludedRows.map((r) => [r.row.cidr, r.addresses]), [['127.0.0.0/8', 2n]]);
  });

  test('a host name that resolves only into them leaves nothing: one line, and the flag', async () => {
    await assert.rejects(space(['localhost']), usage(/^no targets left: the default exclusions took all \d+ probes \((127\.0\.0\.0\/8|::1\/128) .*--no-default-excludes/));
  });
});

describe('size guard', () => {
  test('2^24 addresses start, one more refuses with one line naming the size and --allow-large', async () => {
    const at = await space(['198.0.0.0/8']);
    assert.equal(at.addresses, BigInt(LARGE_SWEEP));
    await assert.rejects(space(['198.0.0.0/8', '199.0.0.0']), usage(/^the sweep covers 16777217 addresses, more than 2\^24 \(16777216\): .*--allow-large/));
    const big = await space(['198.0.0.0/8', '199.0.0.0'], { allowLarge: true });
    assert.equal(big.addresses, BigInt(LARGE_SWEEP) + 1n);
  });

  test('counts addresses after the excludes (user and default), not probes', async () => {
    // 2^24 + 2^16 addresses, of which the user takes out 2^16: at the limit.
    assert.equal((await space(['198.0.0.0/8', '199.0.0.0/16'], { exclude: ['198.1.0.0/16'] })).addresses, BigInt(LARGE_SWEEP));
    // 127/8 does not count: 2^24 after the defaults.
    assert.equal((await space(['127.0.0.0-128.255.255.255'])).addresses, BigInt(LARGE_SWEEP));
    // Many ports do not count either: 2^16 addresses × 2 ports.
    assert.equal((await buildSpace({ targets: ['198.18.0.0/16'], ports: '80,443' })).addresses, 65536n);
    // Pairs count their distinct addresses, once.
    assert.equal((await buildSpace({ targets: ['198.18.0.1:80', '198.18.0.1:443', '198.18.0.2:80'] })).addresses, 2n);
  });

  test('0.0.0.0/0 -p 80 refuses; with --allow-large its space leaves out the defaults', async () => {
    await assert.rejects(space(['0.0.0.0/0']), usage(/^the sweep covers 3724476416 addresses/));
    const s = await space(['0.0.0.0/0'], { allowLarge: true });
    // 2^32 minus 0/8, 127/8, 169.254/16, 224/4 and 240/4.
    assert.equal(s.space.size, 2 ** 32 - 2 * 2 ** 24 - 2 ** 16 - 2 * 2 ** 28);
    assert.equal(s.space.size, 3724476416);
    assert.equal(BigInt(s.space.size) + s.excludedByDefault, 2n ** 32n);
    for (let i = 0; i < 200_000; i += 997) assert.equal(specialRangeOf(s.space.at(i).addr), null);
  });
});
