// A backend's history entries (backend-store.ts histEntry): a state code and
// an RTT in one 32-bit word, exact for every RTT serve keeps (rounded to the µs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HIST_MAX_US, histCode, histEntry, histRttMs } from '../../src/daemon/backend-store';
import { roundMs } from '../../src/types';

test('state and RTT come back as they went in: no RTT, µs RTTs up to the longest, longer ones clamped', () => {
  const out = fc.check(fc.property(fc.integer({ min: 0, max: 3 }), fc.oneof(fc.constant(NaN), fc.double({ min: 0, max: 600_000, noNaN: true })), (code, raw) => {
    const rtt = Number.isNaN(raw) ? NaN : roundMs(raw);
    const e = histEntry(code, rtt);
    if (!(Number.isInteger(e) && e >= 0 && e <= 0xffffffff)) return false; // fits the Uint32Array
    if (histCode(e) !== code) return false;
    const back = histRttMs(e);
    if (Number.isNaN(rtt)) return Number.isNaN(back);
    return back === Math.min(rtt, HIST_MAX_US / 1000);
  }), { numRuns: 5000 });
  if (out.failed) assert.fail(`${fc.defaultReportMessage(out)}\nrerun with seed ${out.seed}, path ${out.counterexamplePath}`);
});

test('examples: 0 ms, 0.123 ms, the longest, past it', () => {
  assert.equal(histRttMs(histEntry(0, 0)), 0);
  assert.equal(histRttMs(histEntry(1, 0.123)), 0.123);
  assert.equal(histCode(histEntry(3, 536_870.910)), 3);
  assert.equal(histRttMs(histEntry(3, 536_870.910)), 536_870.91);
  assert.equal(histRttMs(histEntry(2, 3_600_000)), 536_870.91);
  assert.ok(Number.isNaN(histRttMs(histEntry(2, NaN))));
  // Stored in a Uint32Array, an entry with the top bit set reads back the same.
  const a = new Uint32Array(1);
  a[0] = histEntry(3, 536_870.910);
  assert.equal(histCode(a[0]), 3);
  assert.equal(histRttMs(a[0]), 536_870.91);
});
