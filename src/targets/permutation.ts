// Keyed pseudo-random permutation of [0, n), n <= 2^53, so a sweep visits every
// probe exactly once in an order that spreads load across hosts and networks,
// without storing anything per probe.
//
// Construction: a Feistel network on the smallest power-of-two domain 2^k >= n
// with cycle walking (Black & Rogaway 2002) to land back in [0, n). Odd k is
// handled as in FF1: halves of u = floor(k/2) and v = k - u bits whose widths
// swap every round; each round is invertible, so the whole is a bijection of
// [0, 2^k) for any round function. With 2^k <= 2n the expected number of walks
// per call is at most 2. Halves are at most 27 bits, so everything runs on
// 32-bit integer ops; no bigint on the hot path.
//
// This is for load spreading, not secrecy: the round function is a keyed
// murmur3-style mixer, not a PRF anyone should rely on cryptographically.

import { usageError } from '../errors';

const ROUNDS = 6; // even, so the half widths return to (u, v) at the end
const MAX_N = 2 ** 53;

// SplitMix64: turns any seed, including 0 and small integers, into well-spread round keys.
function* splitmix64(seed: bigint): Generator<bigint> {
  let s = BigInt.asUintN(64, seed);
  for (;;) {
    s = BigInt.asUintN(64, s + 0x9e3779b97f4a7c15n);
    let z = s;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    yield z ^ (z >> 31n);
  }
}

export class Permutation {
  readonly n: number;
  private readonly k0: Int32Array;
  private readonly k1: Int32Array;
  private readonly rightSize: number; // 2^v
  private readonly masks: Int32Array; // mask of the half that round r writes

  constructor(n: number, seed: bigint) {
    if (!Number.isInteger(n) || n < 0 || n > MAX_N) throw new RangeError(`permutation size ${n} outside 0..2^53`);
    this.n = n;
    let k = 2;
    while (2 ** k < n) k++;
    const u = Math.floor(k / 2);
    const v = k - u;
    this.rightSize = 2 ** v;
    this.k0 = new Int32Array(ROUNDS);
    this.k1 = new Int32Array(ROUNDS);
    this.masks = new Int32Array(ROUNDS);
    const keys = splitmix64(seed);
    for (let r = 0; r < ROUNDS; r++) {
      const w = keys.next().value as bigint;
      this.k0[r] = Number(BigInt.asIntN(32, w));
      this.k1[r] = Number(BigInt.asIntN(32, w >> 32n));
      // Round r writes the half that was on the left: u bits on even rounds, v on odd.
      this.masks[r] = (r % 2 === 0 ? 2 ** u : 2 ** v) - 1;
    }
  }

  /** The element at position i of the permuted sequence. */
  at(i: number): number {
    const n = this.n;
    if (!(i >= 0 && i < n && Number.isInteger(i))) throw new RangeError(`permutation index ${i} outside 0..${n - 1}`);
    if (n <= 1) return i;
    const V = this.rightSize;
    const k0 = this.k0, k1 = this.k1, masks = this.masks;
    let x = i;
    do {
      let R = x % V;
      let L = (x - R) / V;
      for (let r = 0; r < ROUNDS; r++) {
        let h = Math.imul(R ^ k0[r], 0xcc9e2d51);
        h = (h << 15) | (h >>> 17);
        h = Math.imul(h, 0x1b873593) ^ k1[r];
        h ^= h >>> 16;
        h = Math.imul(h, 0x85ebca6b);
        h ^= h >>> 13;
        h = Math.imul(h, 0xc2b2ae35);
        h ^= h >>> 16;
        const t = (L ^ h) & masks[r];
        L = R;
        R = t;
      }
      x = L * V + R;
    } while (x >= n);
    return x;
  }
}

export interface Shard { index: number; count: number }

/** The permutation positions a shard owns: first, first + step, … (`count` of them). */
export interface ShardSlice { first: number; step: number; count: number }

function checkShard(shard: Shard): void {
  const { index, count } = shard;
  if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(index) || index < 1 || index > count) {
    throw usageError(`invalid shard ${index}/${count}: expected I/N with 1 <= I <= N`);
  }
}

/** Shard I of N owns the positions i with i % N == I - 1 (I is 1-based). */
export function shardSlice(n: number, shard: Shard): ShardSlice {
  checkShard(shard);
  const first = shard.index - 1;
  const step = shard.count;
  if (first >= n) return { first, step, count: 0 };
  const m = n - first;
  const rem = m % step;
  return { first, step, count: (m - rem) / step + (rem > 0 ? 1 : 0) };
}

/** Lazily yields the permutation positions owned by `shard`, ascending. */
export function* shardIndices(n: number, shard: Shard): Generator<number> {
  const { first, step, count } = shardSlice(n, shard);
  for (let j = 0, i = first; j < count; j++, i += step) yield i;
}

/** `--shard I/N`. */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d{1,9})\s*\/\s*(\d{1,9})\s*$/.exec(text);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count) {
    throw usageError(`invalid shard "${text}": expected I/N with N >= 1 and 1 <= I <= N, e.g. 2/4`);
  }
  return { index, count };
}

/** The three ways to choose a shard: `--shard I/N`, or `--shards N` with `--shard-index I` or JOB_COMPLETION_INDEX. */
export interface ShardChoice {
  /** `--shard I/N`, 1-based. */
  shard?: string;
  /** `--shards N`. */
  shards?: number;
  /** `--shard-index I`, 0-based. */
  shardIndex?: number;
}

/**
 * The shard a sweep runs, or undefined for the whole space. `--shards N`
 * takes its 0-based index from `--shard-index`, else from
 * JOB_COMPLETION_INDEX, which a Kubernetes Indexed Job sets in each pod, so a
 * manifest needs no shell arithmetic. JOB_COMPLETION_INDEX alone shards
 * nothing: the Job may run whole sweeps. Returns the 1-based Shard.
 */
export function chooseShard(c: ShardChoice, env: NodeJS.ProcessEnv = process.env): Shard | undefined {
  if (c.shard !== undefined && (c.shards !== undefined || c.shardIndex !== undefined)) {
    throw usageError('--shard I/N cannot be combined with --shards/--shard-index: give one form');
  }
  if (c.shard !== undefined) return parseShard(c.shard);
  if (c.shards === undefined) {
    if (c.shardIndex !== undefined) throw usageError(`--shard-index ${c.shardIndex} needs --shards N`);
    return undefined;
  }
  const count = c.shards;
  let index = c.shardIndex;
  if (index === undefined) {
    const job = env.JOB_COMPLETION_INDEX;
    if (job === undefined || job === '') throw usageError(`--shards ${count} needs --shard-index I (0 to ${count - 1}) or JOB_COMPLETION_INDEX in the environment`);
    if (!/^\d{1,9}$/.test(job.trim()) || Number(job) >= count) {
      throw usageError(`invalid JOB_COMPLETION_INDEX "${job}": expected 0 to ${count - 1} for --shards ${count}`);
    }
    index = Number(job);
  } else if (index >= count) {
    throw usageError(`invalid --shard-index ${index}: expected 0 to ${count - 1} for --shards ${count}`);
  }
  return { index: index + 1, count };
}
