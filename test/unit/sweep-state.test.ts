// The sweep job's one state (src/sweep/state.ts): the checkpoint and the run
// record are two views of it and agree on every field they share; and the
// position → source rule of several source addresses (src/sweep/sources.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { SweepState } from '../../src/sweep/state';
import { decodeCheckpoint, encodeCheckpoint } from '../../src/sweep/checkpoint';
import { validateRunRecord } from '../../src/sweep/run-record';
import { groupCount, groupOfPosition, isMultiSource, parseSourceList, sourceOfPosition } from '../../src/sweep/sources';
import { HalfopenError } from '../../src/errors';

const seed = process.env.HALFOPEN_FC_SEED === undefined ? undefined : Number(process.env.HALFOPEN_FC_SEED);

function state(): SweepState {
  const s = new SweepState({
    halfopen: '0.1.0', command: ['sweep', '198.18.0.0/24', '-p', '80'], cwd: '/tmp', seed: 7n, shard: { index: 1, count: 4 },
    fingerprint: 'ab'.repeat(32), probes: 64, output: { path: '/tmp/out.ndjson', format: 'ndjson' }, start: new Date('2026-12-02T04:00:00Z'),
    addresses: 256n, excludedByDefault: 3n, defaultExcludes: true,
  }, { sent: 10, retried: 2, duplicates: 1, invalid: 0 } as never);
  s.setRun({ sent: 54, retried: 5, duplicates: 0, invalid: 1 });
  s.xdpMode = 'generic';
  s.sendPath = 'raw';
  s.timeout = { mode: 'auto', ms: 50, floor_ms: 50, ceiling_ms: 1000, quantile: 0.99, factor: 3, samples: 60, rtt_quantile_ms: 0.2 };
  s.sources = ['198.19.253.1', '198.19.253.2'];
  return s;
}

describe('SweepState', () => {
  test('the checkpoint and the run record agree on what they both say, and both validate', () => {
    const s = state();
    const counts = { open: 60, closed: 2, filtered: 2, unreachable: 0 };
    const cp = decodeCheckpoint(encodeCheckpoint(s.checkpoint({ position: 64, bytes: 4096, counts }, true)), 'cp');
    const rec = validateRunRecord(JSON.parse(JSON.stringify(s.record(counts, 4096, true))));
    for (const k of ['halfopen', 'command', 'seed', 'shard', 'fingerprint', 'probes', 'start', 'sent', 'retried', 'duplicates', 'invalid', 'counts', 'complete'] as const)
      assert.deepEqual(cp[k], rec[k], k);
    assert.equal(cp.output.path, rec.output.path);
    assert.equal(cp.bytes, rec.output.bytes);
    // Totals cover the runs before (from the checkpoint) and this one.
    assert.equal(rec.sent, 64);
    assert.equal(rec.retried, 7);
    assert.deepEqual([rec.addresses, rec.excluded_by_default, rec.default_excludes], [256, 3, true]);
    assert.equal(rec.timeout?.mode, 'auto');
    assert.deepEqual(rec.sources, ['198.19.253.1', '198.19.253.2']);
  });
});

describe('several source addresses', () => {
  test('lists, ranges and CIDRs per family, deduplicated, in order', () => {
    assert.deepEqual(parseSourceList(['198.19.253.1-3,198.19.253.2', '2001:2:0:fffe::/127', '198.19.253.8/31']), {
      v4: ['198.19.253.1', '198.19.253.2', '198.19.253.3', '198.19.253.8', '198.19.253.9'], v6: ['2001:2:0:fffe::', '2001:2:0:fffe::1'],
    });
    assert.equal(isMultiSource(parseSourceList(['198.19.253.1', '2001:2::1'])), false);
    assert.equal(groupCount(parseSourceList(['198.19.253.1-4', '2001:2::1-2001:2::6'])), 12);
  });

  test('bad lists are one usage line naming the item', () => {
    for (const bad of ['198.19.253.1/33', 'web-01', '198.19.253.1,,198.19.253.2', '10.0.0.0/8'])
      assert.throws(() => parseSourceList([bad]), (e: unknown) => e instanceof HalfopenError && e.code === 'E_USAGE' && !e.message.includes('\n') && /--source-ip/.test(e.message), bad);
    // 1021 and 1019 addresses are both prime: lcm over 1024 groups.
    assert.throws(() => parseSourceList(['198.19.0.0-198.19.3.252', '2001:2::1-2001:2::3fb']), /send groups, more than 1024/);
  });

  test('the send group of a position gives each family its address position mod K', () => {
    const out = fc.check(fc.property(fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: 2 ** 40 }), (k4, k6, p) => {
      const s = { v4: Array.from({ length: k4 }, (_, i) => `198.19.253.${i + 1}`), v6: Array.from({ length: k6 }, (_, i) => `2001:2::${i + 1}`) };
      const L = groupCount(s);
      const g = groupOfPosition(p, L);
      // What the engine gives group g (engine.ts sweepGroups) is what the rule says for p.
      if (k4) assert.equal(s.v4[g % k4], sourceOfPosition(s, true, p));
      if (k6) assert.equal(s.v6[g % k6], sourceOfPosition(s, false, p));
      assert.ok(L % Math.max(1, k4) === 0 && L % Math.max(1, k6) === 0 && L <= Math.max(1, k4) * Math.max(1, k6));
    }), { numRuns: 500, seed });
    if (out.failed) assert.fail(`${fc.defaultReportMessage(out)}\nrerun: HALFOPEN_FC_SEED=${out.seed}`);
  });
});
