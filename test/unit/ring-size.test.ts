// The verdict ring's size for a probe table (src/engine/engine.ts ringFor):
// a record for every slot, within the kernel's rules for a ring buffer map
// (a power of two, whole pages) and the old 4 MB at most.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ringFor } from '../../src/engine/engine';

const MAX = 4 << 20, MIN = 64 << 10, RECORD = 16;

test('ring sizes at the tables serve and the sweep open', () => {
  assert.equal(ringFor(1024), MIN); // serve's smallest table
  assert.equal(ringFor(12_500), 256 << 10); // 10,000 backends and a quarter more
  assert.equal(ringFor(125_000), 2 << 20); // 100,000 backends
  assert.equal(ringFor(1 << 20), MAX); // a sweep's default window
});

test('a power of two of whole pages, the smallest that holds a record per slot, within 64 KB..4 MB', () => {
  const out = fc.check(fc.property(fc.integer({ min: 1, max: 1 << 24 }), (capacity) => {
    const r = ringFor(capacity);
    if (!(r >= MIN && r <= MAX && (r & (r - 1)) === 0 && r % 4096 === 0)) return false;
    if (r < capacity * RECORD && r !== MAX) return false; // room for every slot, up to the cap
    return r === MIN || r / 2 < capacity * RECORD; // and no larger than that
  }), { numRuns: 2000 });
  if (out.failed) assert.fail(`${fc.defaultReportMessage(out)}\nrerun with seed ${out.seed}, path ${out.counterexamplePath}`);
});
