// The one resolver: literals skip it, the family filters, a failure is a code
// and never a throw, and a resolver that hangs costs no more than the deadline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lookupHost, type LookupFn } from '../../src/targets/resolve';
import { parseAddress } from '../../src/targets/address';

const A = (s: string) => parseAddress(s)!;
const never: LookupFn = () => { throw new Error('no look-up for a literal'); };
const both: LookupFn = async () => [{ address: '2001:2::8', family: 6 }, { address: '198.18.0.8', family: 4 }];

test('literals, with or without brackets, are their address and never expire', async () => {
  assert.deepEqual(await lookupHost('198.18.0.7', { lookup: never }), { addrs: [A('198.18.0.7')], ttlMs: Infinity, error: '' });
  assert.deepEqual((await lookupHost('[2001:2::7]', { lookup: never })).addrs, [A('2001:2::7')]);
});

test('the system resolver, filtered by family, with the fallback TTL', async () => {
  assert.deepEqual(await lookupHost('web.example', { lookup: both, fallbackTtlMs: 7000 }), { addrs: [A('2001:2::8'), A('198.18.0.8')], ttlMs: 7000, error: '' });
  assert.deepEqual((await lookupHost('web.example', { lookup: both, family: 4 })).addrs, [A('198.18.0.8')]);
  const none = await lookupHost('web.example', { lookup: async () => [{ address: '198.18.0.8', family: 4 }], family: 6 });
  assert.deepEqual([none.addrs, none.error], [[], 'no IPv6 addresses']);
});

test('a failure is its code, errno and syscall, never a throw', async () => {
  const fail: LookupFn = async () => { throw Object.assign(new Error('getaddrinfo ENOTFOUND x'), { code: 'ENOTFOUND', errno: -3008, syscall: 'getaddrinfo' }); };
  const r = await lookupHost('nosuch.example', { lookup: fail });
  assert.deepEqual([r.addrs, r.error, r.errno, r.syscall], [[], 'ENOTFOUND', -3008, 'getaddrinfo']);
});

test('a resolver that never answers: ETIMEOUT at the deadline', async () => {
  const hang: LookupFn = () => new Promise(() => { /* never settles */ });
  const t0 = Date.now();
  const r = await lookupHost('slow.example', { lookup: hang, deadlineMs: 50 });
  assert.deepEqual([r.addrs, r.error], [[], 'ETIMEOUT']);
  assert.ok(Date.now() - t0 < 5000, 'the deadline, not the resolver, ended the look-up');
});
