import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HalfopenError } from '../../src/errors';
import { chooseShard, parseShard, Permutation, shardIndices, shardSlice } from '../../src/targets/permutation';

function assertBijection(n: number, seed: bigint): void {
  const p = new Permutation(n, seed);
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const x = p.at(i);
    assert.ok(Number.isInteger(x) && x >= 0 && x < n, `n=${n} at(${i})=${x}`);
    assert.equal(seen[x], 0, `n=${n}: ${x} hit twice`);
    seen[x] = 1;
  }
}

describe('Permutation', () => {
  for (const n of [1, 2, 3, 4, 5, 7, 8, 9, 1000, 1023, 1024, 1025, 65536, 65537, 1_000_003]) {
    test(`bijection on [0, ${n})`, () => {
      assertBijection(n, 0x5eedn);
      if (n <= 65537) assertBijection(n, 0n);
    });
  }

  test('bijection across many seeds and small sizes', () => {
    for (let n = 1; n <= 70; n++) for (let s = 0n; s < 20n; s++) assertBijection(n, s * 0x9e3779b97f4a7c15n);
  });

  test('same seed reproduces, different seeds differ', () => {
    const seq = (n: number, seed: bigint): number[] => Array.from({ length: Math.min(n, 200) }, (_, i) => new Permutation(n, seed).at(i));
    assert.deepEqual(seq(1000, 42n), seq(1000, 42n));
    assert.notDeepEqual(seq(1000, 42n), seq(1000, 43n));
    assert.notDeepEqual(seq(1000, 0n), seq(1000, 1n));
    assert.notDeepEqual(seq(1_000_003, 1n), seq(1_000_003, 1n << 40n));
    // Seeds are taken mod 2^64.
    assert.deepEqual(seq(1000, -1n), seq(1000, (1n << 64n) - 1n));
  });

  test('output is scrambled, not near-identity', () => {
    const n = 65536;
    const p = new Permutation(n, 7n);
    let fixed = 0, ascending = 0;
    for (let i = 0; i < n; i++) {
      if (p.at(i) === i) fixed++;
      if (i > 0 && p.at(i) === p.at(i - 1) + 1) ascending++;
    }
    assert.ok(fixed < 20, `fixed points ${fixed}`);
    assert.ok(ascending < 20, `ascending steps ${ascending}`);
    // Consecutive positions should land in different /24-sized blocks most of the time.
    let sameBlock = 0;
    for (let i = 1; i < 10000; i++) if (p.at(i) >> 8 === p.at(i - 1) >> 8) sameBlock++;
    assert.ok(sameBlock < 200, `same block ${sameBlock}`);
  });

  test('large n stays in range and injective on a sample', () => {
    for (const n of [2 ** 53, 2 ** 53 - 1, 2 ** 40 + 12345, 2 ** 33 * 3]) {
      const p = new Permutation(n, 99n);
      const seen = new Set<number>();
      for (const i of [0, 1, n - 1, n - 2, ...Array.from({ length: 20000 }, (_, k) => Math.floor((n / 20000) * k) + 2)]) {
        if (i >= n) continue;
        const x = p.at(i);
        assert.ok(Number.isInteger(x) && x >= 0 && x < n, `n=${n} at(${i})=${x}`);
        seen.add(x);
      }
      assert.ok(seen.size >= 20000, `collisions for n=${n}`);
    }
  });

  test('rejects bad sizes and indices', () => {
    assert.throws(() => new Permutation(-1, 0n), RangeError);
    assert.throws(() => new Permutation(2 ** 53 + 2, 0n), RangeError);
    assert.throws(() => new Permutation(1.5, 0n), RangeError);
    const p = new Permutation(10, 0n);
    for (const i of [-1, 10, 0.5, NaN]) assert.throws(() => p.at(i), RangeError);
    assert.throws(() => new Permutation(0, 0n).at(0), RangeError);
  });

});

describe('shards', () => {
  test('shards are disjoint and their union is the whole space', () => {
    for (const n of [0, 1, 2, 10, 1000, 1001]) {
      for (let count = 1; count <= 7; count++) {
        const owner = new Int8Array(n).fill(-1);
        let total = 0;
        for (let index = 1; index <= count; index++) {
          const slice = shardSlice(n, { index, count });
          let got = 0;
          for (const i of shardIndices(n, { index, count })) {
            assert.equal(i % count, index - 1);
            assert.equal(owner[i], -1, `n=${n} ${index}/${count}: position ${i} already owned`);
            owner[i] = index;
            got++;
          }
          assert.equal(got, slice.count);
          total += got;
        }
        assert.equal(total, n);
        assert.ok(owner.every((o) => o > 0));
      }
    }
  });

  test('slice arithmetic is exact at 2^53', () => {
    const n = 2 ** 53;
    const counts = [1, 2, 3].map((index) => shardSlice(n, { index, count: 3 }).count);
    assert.deepEqual(counts, [3002399751580331, 3002399751580331, 3002399751580330]);
    assert.equal(counts[0] + counts[1] + counts[2], n);
    assert.deepEqual(shardSlice(5, { index: 7, count: 8 }), { first: 6, step: 8, count: 0 });
  });

  test('parseShard', () => {
    assert.deepEqual(parseShard('2/4'), { index: 2, count: 4 });
    assert.deepEqual(parseShard('1/1'), { index: 1, count: 1 });
    assert.deepEqual(parseShard(' 4 / 4 '), { index: 4, count: 4 });
    for (const bad of ['0/4', '5/4', '1/0', '0/0', 'a/b', '2', '', '-1/4', '1/4/5', '1.5/4', '2/4x', '1/9999999999']) {
      assert.throws(() => parseShard(bad), (e: unknown) => {
        assert.ok(e instanceof HalfopenError);
        assert.equal(e.code, 'E_USAGE');
        assert.equal(e.message, `invalid shard "${bad}": expected I/N with N >= 1 and 1 <= I <= N, e.g. 2/4`);
        return true;
      }, bad);
    }
  });

  test('shardSlice rejects a malformed shard object', () => {
    assert.throws(() => shardSlice(10, { index: 0, count: 2 }), (e: unknown) => e instanceof HalfopenError && e.code === 'E_USAGE');
    assert.throws(() => shardSlice(10, { index: 3, count: 2 }), (e: unknown) => e instanceof HalfopenError && e.code === 'E_USAGE');
  });
});

describe('chooseShard: --shard I/N, --shards N --shard-index I, JOB_COMPLETION_INDEX', () => {
  const usage = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => e instanceof HalfopenError && e.code === 'E_USAGE' && re.test(e.message));

  test('no choice: the whole space, even inside an Indexed Job', () => {
    assert.equal(chooseShard({}, {}), undefined);
    assert.equal(chooseShard({}, { JOB_COMPLETION_INDEX: '3' }), undefined);
  });
  test('--shards N --shard-index I is 0-based and the same shard as --shard I+1/N', () => {
    for (let i = 0; i < 4; i++) assert.deepEqual(chooseShard({ shards: 4, shardIndex: i }, {}), parseShard(`${i + 1}/4`));
  });
  test('--shard-index wins over JOB_COMPLETION_INDEX; without it the variable decides', () => {
    assert.deepEqual(chooseShard({ shards: 4, shardIndex: 1 }, { JOB_COMPLETION_INDEX: '3' }), { index: 2, count: 4 });
    assert.deepEqual(chooseShard({ shards: 4 }, { JOB_COMPLETION_INDEX: '3' }), { index: 4, count: 4 });
    assert.deepEqual(chooseShard({ shards: 1 }, { JOB_COMPLETION_INDEX: '0' }), { index: 1, count: 1 });
  });
  test('--shard I/N stays', () => assert.deepEqual(chooseShard({ shard: '2/4' }, {}), { index: 2, count: 4 }));
  test('mismatches are one clear usage error each', () => {
    usage(() => chooseShard({ shards: 4, shardIndex: 4 }, {}), /^invalid --shard-index 4: expected 0 to 3 for --shards 4$/);
    usage(() => chooseShard({ shards: 4 }, { JOB_COMPLETION_INDEX: '4' }), /^invalid JOB_COMPLETION_INDEX "4": expected 0 to 3/);
    usage(() => chooseShard({ shards: 4 }, { JOB_COMPLETION_INDEX: 'x' }), /JOB_COMPLETION_INDEX "x"/);
    usage(() => chooseShard({ shards: 4 }, {}), /--shards 4 needs --shard-index I \(0 to 3\) or JOB_COMPLETION_INDEX/);
    usage(() => chooseShard({ shardIndex: 2 }, {}), /--shard-index 2 needs --shards N/);
    usage(() => chooseShard({ shard: '1/4', shards: 4 }, {}), /cannot be combined/);
    usage(() => chooseShard({ shard: '1/4', shardIndex: 0 }, {}), /cannot be combined/);
  });
});
