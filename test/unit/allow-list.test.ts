import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AllowList } from '../../src/daemon/allow-list';
import { parseAddress, v4FromNumber } from '../../src/targets/address';

const addr = (s: string) => parseAddress(s)!;

test('CIDRs, ranges and addresses of both families', () => {
  const a = AllowList.parse(['198.18.0.0/15', '2001:2::/48', '203.0.113.5', '192.0.2.10-192.0.2.20'], 'exporter.allow');
  for (const ok of ['198.18.0.0', '198.19.255.255', '2001:2::1', '2001:2:0:ffff::9', '203.0.113.5', '192.0.2.10', '192.0.2.20'])
    assert.equal(a.allows(addr(ok)), true, ok);
  for (const no of ['198.17.255.255', '198.20.0.0', '2001:3::1', '203.0.113.6', '192.0.2.9', '192.0.2.21', '::1', '127.0.0.1'])
    assert.equal(a.allows(addr(no)), false, no);
});

test('an IPv4-mapped IPv6 spelling is the IPv4 address', () => {
  const a = AllowList.parse(['198.18.0.0/16'], 'x');
  assert.equal(a.allowsText('::ffff:198.18.3.4'), true);
  assert.equal(a.allowsText('[::ffff:198.18.3.4]'), true);
  assert.equal(a.allowsText('::ffff:198.19.3.4'), false);
  const m = AllowList.parse(['::ffff:198.18.0.0/112'], 'x');
  assert.equal(m.allowsText('198.18.200.1'), true);
});

test('names allow what they resolve to, after refresh only', async () => {
  const a = AllowList.parse(['db.internal', 'DB.internal.'], 'plugin.allow');
  assert.deepEqual(a.names, ['db.internal']);
  assert.equal(a.allows(addr('198.18.7.7')), false);
  await a.refresh(async (n) => (n === 'db.internal' ? [addr('198.18.7.7'), addr('2001:2::7')] : []));
  assert.equal(a.allows(addr('198.18.7.7')), true);
  assert.equal(a.allows(addr('2001:2::7')), true);
  assert.equal(a.allows(addr('198.18.7.8')), false);
  await a.refresh(async () => { throw new Error('ENOTFOUND'); });
  assert.equal(a.allows(addr('198.18.7.7')), false, 'a name that stops resolving allows nothing');
});

test('bad entries are one E_CONFIG error naming the list and the entry', () => {
  for (const bad of [['198.18.0.0/33'], ['10.0.0.999'], ['bad name'], [''], [5], 'not-a-list', ['2001:2::/129'], ['198.18.0.5-198.18.0.1']]) {
    assert.throws(() => AllowList.parse(bad, 'exporter.allow'), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'E_CONFIG');
      assert.match(e.message, /^exporter\.allow/);
      return true;
    }, JSON.stringify(bad));
  }
});

test('property: an address is allowed exactly when a listed IPv4 CIDR holds it', () => {
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.nat(0xffffffff), fc.integer({ min: 8, max: 32 })), { minLength: 1, maxLength: 8 }),
    fc.nat(0xffffffff),
    (cidrs, probe) => {
      const entries = cidrs.map(([n, p]) => {
        const net = p === 0 ? 0 : (n >>> (32 - p)) << (32 - p) >>> 0;
        return `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${p}`;
      });
      const a = AllowList.parse(entries, 'x');
      const inside = cidrs.some(([n, p]) => (probe >>> (32 - p)) === (n >>> (32 - p)) || (p === 32 && probe === n));
      return a.allows(v4FromNumber(probe)) === inside;
    },
  ), { numRuns: 500 });
});
