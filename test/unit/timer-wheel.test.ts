// The scheduler's agenda against a reference (a plain map of row → time):
// whatever is scheduled, moved, cancelled or re-ticked, a drain hands out
// exactly the rows due by then, each once, and keeps every other.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TimerWheel } from '../../src/daemon/timer-wheel';

type Op =
  | { op: 'schedule'; id: number; dt: number }
  | { op: 'cancel'; id: number }
  | { op: 'advance'; dt: number }
  | { op: 'retick'; tick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('schedule' as const), id: fc.integer({ min: 0, max: 40 }), dt: fc.oneof(fc.integer({ min: -500, max: 500 }), fc.integer({ min: 0, max: 300_000 })) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('cancel' as const), id: fc.integer({ min: 0, max: 40 }) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('advance' as const), dt: fc.oneof(fc.integer({ min: 0, max: 120 }), fc.integer({ min: 0, max: 400_000 })) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('retick' as const), tick: fc.integer({ min: 10, max: 50 }) }) },
);

describe('timer wheel (scheduler agenda)', () => {
  test('drain visits exactly the rows due, once each, whatever was scheduled, moved, cancelled or re-ticked (fast-check)', () => {
    const out = fc.check(fc.property(fc.array(opArb, { maxLength: 200 }), fc.integer({ min: 0, max: 2 ** 40 }), fc.constantFrom(4, 64, 4096), (ops, t0, size) => {
      const wheel = new TimerWheel(50, size);
      const ref = new Map<number, number>();
      let now = t0;
      for (const o of ops) {
        if (o.op === 'schedule') { wheel.schedule(o.id, now + o.dt); ref.set(o.id, now + o.dt); }
        else if (o.op === 'cancel') { wheel.cancel(o.id); ref.delete(o.id); }
        else if (o.op === 'retick') wheel.retick(o.tick);
        else {
          now += o.dt;
          const seen: number[] = [];
          wheel.drain(now, (id) => seen.push(id));
          const want = [...ref].filter(([, at]) => at <= now).map(([id]) => id).sort((a, b) => a - b);
          assert.deepEqual([...seen].sort((a, b) => a - b), want, `drain at ${now}`);
          for (const id of want) ref.delete(id);
        }
        assert.equal(wheel.size, ref.size);
        for (const [id, at] of ref) assert.equal(wheel.timeOf(id), at);
      }
    }), { numRuns: 300 });
    if (out.failed) assert.fail(`${fc.defaultReportMessage(out)}\nrerun with seed ${out.seed}, path ${out.counterexamplePath}`);
  });

  test('a row visited may be filed again in the same bucket: it is not visited twice in one drain', () => {
    const wheel = new TimerWheel(50);
    for (let id = 0; id < 10; id++) wheel.schedule(id, 1000 + id);
    let visits = 0;
    wheel.drain(1020, (id) => { visits++; wheel.schedule(id, 1021 + id); });
    assert.equal(visits, 10);
    assert.equal(wheel.size, 10);
  });
});
