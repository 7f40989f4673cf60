// How a backend's row keeps values narrower than a double (backend-store.ts):
// history entries (a state code and an RTT in one 32-bit word) and RTTs as
// whole µs, exact for every RTT serve keeps (rounded to the µs); streaks as
// Int32, saturating.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BackendStore, HIST_MAX_US, histCode, histEntry, histRttMs, rttKept, rttOfKept, streakKept } from '../../src/daemon/backend-store';
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

test('an RTT kept in an Int32Array reads back exactly, none (NaN) as none, a negative one as 0 as the history always kept it', () => {
  const a = new Int32Array(1);
  const out = fc.check(fc.property(fc.oneof(fc.constant(NaN), fc.constant(-1), fc.double({ min: 0, max: 600_000, noNaN: true })), (raw) => {
    const rtt = Number.isNaN(raw) || raw < 0 ? raw : roundMs(raw);
    a[0] = rttKept(rtt);
    if (a[0] !== rttKept(rtt)) return false; // fits the Int32Array
    const back = rttOfKept(a[0]);
    if (Number.isNaN(rtt)) return Number.isNaN(back);
    if (rtt < 0) return back === 0;
    return back === Math.min(rtt, HIST_MAX_US / 1000);
  }), { numRuns: 5000 });
  if (out.failed) assert.fail(`${fc.defaultReportMessage(out)}\nrerun with seed ${out.seed}, path ${out.counterexamplePath}`);
  assert.equal(rttKept(NaN), 0);
  assert.equal(rttOfKept(rttKept(0)), 0);
  assert.equal(rttOfKept(rttKept(12.345)), 12.345);
});

test('a streak saturates at the Int32 bounds instead of wrapping', () => {
  const s = new BackendStore(4);
  const id = s.alloc();
  s.streak[id] = streakKept(2 ** 31 - 1 + 1);
  assert.equal(s.streak[id], 2 ** 31 - 1);
  s.streak[id] = streakKept(-(2 ** 31) - 5);
  assert.equal(s.streak[id], -(2 ** 31 - 1));
  s.streak[id] = streakKept(41.6);
  assert.equal(s.streak[id], 42);
});

test('a fresh row has no RTTs: last, answered and failed all none', () => {
  const s = new BackendStore(4);
  const id = s.alloc();
  s.lastRttUs[id] = rttKept(3); s.okRttUs[id] = rttKept(4); s.failRttUs[id] = rttKept(5);
  s.release(id);
  const again = s.alloc();
  assert.equal(again, id);
  for (const a of [s.lastRttUs, s.okRttUs, s.failRttUs]) assert.ok(Number.isNaN(rttOfKept(a[again])));
});

test('a row\'s slots (the first inline, the rest in a shared block) read back as set, over allocs, releases and re-slotting', () => {
  const op = fc.oneof(
    fc.record({ k: fc.constant('alloc' as const), depth: fc.integer({ min: 0, max: 8 }) }),
    fc.record({ k: fc.constant('release' as const), pick: fc.nat() }),
    fc.record({ k: fc.constant('reslot' as const), pick: fc.nat(), depth: fc.integer({ min: 0, max: 8 }) }),
  );
  const out = fc.check(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
    const s = new BackendStore(2);
    const model = new Map<number, number[]>();
    let next = 0;
    const give = (id: number, depth: number) => {
      s.clearSlots(id);
      const list: number[] = [];
      for (let k = 0; k < depth; k++) { s.setSlot(id, k, next); list.push(next++); }
      model.set(id, list);
    };
    for (const o of ops) {
      const ids = [...model.keys()];
      if (o.k === 'alloc') give(s.alloc(), o.depth);
      else if (!ids.length) continue;
      else if (o.k === 'release') { const id = ids[o.pick % ids.length]; s.release(id); model.delete(id); }
      else give(ids[o.pick % ids.length], o.depth);
      for (const [id, list] of model) {
        if (s.nslots[id] !== list.length) return false;
        for (let k = 0; k < list.length; k++) if (s.slotOf(id, k) !== list[k]) return false;
      }
    }
    return true;
  }), { numRuns: 1000 });
  if (out.failed) assert.fail(`${fc.defaultReportMessage(out)}\nrerun with seed ${out.seed}, path ${out.counterexamplePath}`);
});
