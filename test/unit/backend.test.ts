// What serve reports for one backend: never up unless measured recently,
// down for maintenance or without an address, and slow start's weight ramp.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Backend, staleAfter } from '../../src/daemon/backend';
import { parseConfig } from '../../src/daemon/config';

const cfg = (extra = '') => parseConfig(`defaults: { interval: 1s, timeout: 500ms, fastinter: 250ms, rise: 2, fall: 3${extra} }\nbackends:\n  - { name: b, host: 198.18.0.1, port: 80, weight: 80 }\n`).backends[0];
const T0 = 1_000_000;

describe('serve backend record', () => {
  test('stale after 2 x interval + timeout + two ticks without a completed check: then reported down, reason stale', () => {
    const b = new Backend(cfg(), 0xffffc6120001n, T0);
    assert.equal(staleAfter(b.cfg), 2 * 1000 + 500 + 100);
    assert.equal(b.effectiveState(T0 + 2600), 'up', 'fresh from the start until the bound');
    assert.equal(b.effectiveState(T0 + 2601), 'down');
    assert.equal(b.downReason(T0 + 2601), 'stale');
    b.last = { ok: true, state: 'open', reason: 'syn-ack', rtt_ms: 0.1, ts: T0 + 5000 };
    assert.equal(b.effectiveState(T0 + 5000 + 2600), 'up');
    assert.equal(b.effectiveState(T0 + 5000 + 2601), 'down');
  });

  test('a restored result older than this process counts from the start, not from when it was taken', () => {
    const b = new Backend(cfg(), 0xffffc6120001n, T0);
    b.last = { ok: true, state: 'open', reason: 'syn-ack', rtt_ms: 0.1, ts: T0 - 3_600_000 };
    assert.equal(b.checkAge(T0 + 100), 100);
    assert.equal(b.effectiveState(T0 + 100), 'up');
  });

  test('maintenance and a missing address are down whatever the health says', () => {
    const b = new Backend(cfg(), 0xffffc6120001n, T0);
    b.admin = 'maint';
    assert.equal(b.effectiveState(T0 + 1), 'down');
    assert.equal(b.downReason(T0 + 1), 'maint');
    const u = new Backend(cfg(), null, T0);
    assert.equal(u.effectiveState(T0 + 1), 'down');
    assert.equal(u.downReason(T0 + 1), 'unresolved');
    assert.equal(u.reported, 'down', 'an unresolved backend starts down, with no event');
  });

  test('slow start: 10 % of the weight when it comes up, linear to full over slowstart, full without it', () => {
    const b = new Backend(cfg(', slowstart: 10s'), 0xffffc6120001n, T0);
    assert.equal(b.weightNow(T0), 80, 'no ramp at start');
    b.upAt = T0;
    assert.equal(b.weightNow(T0), 8);
    assert.equal(b.weightNow(T0 + 5000), 40);
    assert.equal(b.weightNow(T0 + 10_000), 80);
    assert.ok(b.rampingUp(T0 + 9000) && !b.rampingUp(T0 + 10_000));
    const plain = new Backend(cfg(), 0xffffc6120001n, T0);
    plain.upAt = T0;
    assert.equal(plain.weightNow(T0), 80);
  });
});
