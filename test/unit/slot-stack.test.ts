// The monitor's free probe-table slots (slot-stack.ts) against the number[]
// they replaced: the same slots out in the same order, lowest first, for any
// run of takes, give-backs and on-demand reservations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SlotStack } from '../../src/daemon/slot-stack';

type Op = { k: 'pop' } | { k: 'push' } | { k: 'drop'; n: number } | { k: 'reset'; cap: number };

test('behaves as the array it replaced (pop lowest, push back, splice the bottom away, reset)', () => {
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 5, arbitrary: fc.constant({ k: 'pop' } as Op) },
    { weight: 4, arbitrary: fc.constant({ k: 'push' } as Op) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 }).map((n) => ({ k: 'drop', n }) as Op) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 64 }).map((cap) => ({ k: 'reset', cap }) as Op) },
  );
  const out = fc.check(fc.property(fc.integer({ min: 0, max: 64 }), fc.array(op, { maxLength: 300 }), (cap0, ops) => {
    const s = new SlotStack(cap0);
    let ref: number[] = [];
    for (let i = cap0 - 1; i >= 0; i--) ref.push(i);
    let cap = cap0;
    const taken: number[] = [];
    for (const o of ops) {
      if (o.k === 'pop') {
        const a = s.pop(), b = ref.length ? ref.pop()! : -1;
        if (a !== b) return false;
        if (a >= 0) taken.push(a);
      } else if (o.k === 'push') {
        if (!taken.length) continue;
        const slot = taken.pop()!;
        s.push(slot); ref.push(slot);
      } else if (o.k === 'drop') {
        s.dropBottom(o.n); ref.splice(0, o.n);
      } else {
        cap = o.cap; s.reset(cap); ref = []; taken.length = 0;
        for (let i = cap - 1; i >= 0; i--) ref.push(i);
      }
      if (s.length !== ref.length) return false;
    }
    return JSON.stringify([...s]) === JSON.stringify(ref);
  }), { numRuns: 2000 });
  if (out.failed) assert.fail(`${fc.defaultReportMessage(out)}\nrerun with seed ${out.seed}, path ${out.counterexamplePath}`);
});

test('more slots given back than the table holds is an error, not a write past the end', () => {
  const s = new SlotStack(2);
  assert.throws(() => s.push(0), /more slots given back/);
  assert.equal(s.pop(), 0);
  s.push(0);
  assert.deepEqual([...s], [1, 0]);
  assert.equal(new SlotStack(0).pop(), -1);
});
