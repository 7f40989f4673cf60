// Properties of the --timeout auto estimator (src/engine/rtt-estimator.ts),
// checked with fast-check: the wait is never below the floor or above the
// ceiling, it is monotone in the observed quantile, and the histogram's
// quantile is never below the true quantile of its samples (nor more than one
// bucket above it). A failure prints the seed; rerun one with
// HALFOPEN_FC_SEED=<seed> HALFOPEN_FC_PATH=<path>.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AUTO_DEFAULTS, RttHistogram, TimeoutPolicy, waitFor, waitForSamples } from '../../src/engine/rtt-estimator';

const seed = process.env.HALFOPEN_FC_SEED === undefined ? undefined : Number(process.env.HALFOPEN_FC_SEED);
const runs = Number(process.env.HALFOPEN_FC_RUNS ?? 500);

function check<T>(name: string, arb: fc.Arbitrary<T>, prop: (v: T) => void): void {
  const out = fc.check(fc.property(arb, (v) => { prop(v); }), { numRuns: runs, seed, path: process.env.HALFOPEN_FC_PATH, includeErrorInReport: true });
  if (out.failed) assert.fail(`${fc.defaultReportMessage(out)}\nrerun: HALFOPEN_FC_SEED=${out.seed} HALFOPEN_FC_PATH=${out.counterexamplePath}`);
  process.stdout.write(`# ${name}: ${out.numRuns} runs, seed ${out.seed}\n`);
}

const policyArb: fc.Arbitrary<TimeoutPolicy> = fc.record({
  quantile: fc.double({ min: 0.5, max: 0.9999, noNaN: true }),
  factor: fc.double({ min: 1, max: 10, noNaN: true }),
  floorMs: fc.integer({ min: 1, max: 2000 }),
  ceilingMs: fc.integer({ min: 1, max: 600_000 }),
  minSamples: fc.integer({ min: 1, max: 100 }),
});
const rttArb = fc.oneof(fc.constant(null), fc.double({ min: 0, max: 1e6, noNaN: true }));
const samplesArb = fc.array(fc.oneof(fc.double({ min: 0, max: 5, noNaN: true }), fc.double({ min: 0, max: 5000, noNaN: true })), { minLength: 1, maxLength: 400 });

describe('rtt estimator', () => {
  test('the wait is never above the ceiling, never below the floor (unless the ceiling is lower)', () => {
    check('bounds', fc.tuple(policyArb, rttArb), ([p, rtt]) => {
      const w = waitFor(rtt, p);
      assert.ok(w <= p.ceilingMs, `${w} > ceiling ${p.ceilingMs}`);
      assert.ok(w >= Math.min(p.floorMs, p.ceilingMs), `${w} < floor ${p.floorMs}`);
      assert.ok(Number.isInteger(w));
    });
  });

  test('the wait is monotone in the observed quantile', () => {
    check('monotone', fc.tuple(policyArb, fc.double({ min: 0, max: 1e5, noNaN: true }), fc.double({ min: 0, max: 1e5, noNaN: true })), ([p, a, b]) => {
      const [lo, hi] = a <= b ? [a, b] : [b, a];
      assert.ok(waitFor(lo, p) <= waitFor(hi, p));
      // And covers the quantile times the factor whenever the ceiling allows.
      const w = waitFor(hi, p);
      if (hi * p.factor <= p.ceilingMs) assert.ok(w >= hi * p.factor);
    });
  });

  test('without enough samples it waits the ceiling', () => {
    check('few samples', fc.tuple(policyArb, samplesArb), ([p, xs]) => {
      const h = new RttHistogram();
      for (const x of xs) h.add(x);
      const w = waitForSamples(h, p);
      if (xs.length < p.minSamples) assert.equal(w, p.ceilingMs);
      else assert.equal(w, waitFor(h.quantile(p.quantile), p));
    });
  });

  test('the histogram quantile is an upper bound of the true one, within one bucket (4.4 %)', () => {
    check('quantile', fc.tuple(samplesArb, fc.double({ min: 0.01, max: 0.9999, noNaN: true })), ([xs, q]) => {
      const h = new RttHistogram();
      for (const x of xs) h.add(x);
      const sorted = [...xs].sort((a, b) => a - b);
      const truth = sorted[Math.max(1, Math.ceil(q * xs.length)) - 1];
      const got = h.quantile(q)!;
      assert.ok(got >= truth * (1 - 1e-12), `quantile ${got} below the true ${truth}`);
      assert.ok(got <= Math.max(truth * 2 ** (1 / 16) * (1 + 1e-12), 0.001 * 2 ** (1 / 16)), `quantile ${got} more than a bucket above ${truth}`);
      assert.ok(got <= sorted[sorted.length - 1] + 1e-12 || got <= 0.001 * 2 ** (1 / 16));
    });
  });

  test('adding a slower sample never lowers a quantile', () => {
    check('monotone in samples', fc.tuple(samplesArb, fc.double({ min: 0, max: 5000, noNaN: true }), fc.double({ min: 0.5, max: 0.999, noNaN: true })), ([xs, extra, q]) => {
      const h = new RttHistogram();
      for (const x of xs) h.add(x);
      const before = h.quantile(q)!;
      h.add(Math.max(extra, Math.max(...xs)));
      assert.ok(h.quantile(q)! >= before);
    });
  });

  test('the defaults: a LAN waits the floor, a 200 ms network three times its tail, silence the ceiling', () => {
    const p = { ...AUTO_DEFAULTS, ceilingMs: 1000 };
    const lan = new RttHistogram();
    for (let i = 0; i < 1000; i++) lan.add(0.05 + (i % 10) * 0.01);
    assert.equal(waitForSamples(lan, p), 50);
    const slow = new RttHistogram();
    for (let i = 0; i < 1000; i++) slow.add(200 + (i % 20));
    const w = waitForSamples(slow, p);
    assert.ok(w >= 3 * 219 && w <= 3 * 219 * 1.05, String(w));
    assert.equal(waitForSamples(new RttHistogram(), p), 1000);
  });
});
