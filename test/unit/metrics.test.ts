// Unit tier: the /metrics exposition written as bytes into reused buffers
// (src/daemon/metrics.ts) is, byte for byte, what the string templates it
// replaced made (test/helpers/metrics-reference.ts), over fleets with names
// and labels that need escaping or are not ASCII, every result state, RTTs
// tiny and huge, admin states, slow start and push counters; and a render
// that runs out of buffers waits for one instead of allocating more.
// Properties print fast-check's seed on failure; rerun one with
// HALFOPEN_FC_SEED=<seed> HALFOPEN_FC_PATH=<path>.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Monitor, ProbeSlots, capacityFor } from '../../src/daemon/monitor';
import { parseConfig } from '../../src/daemon/config';
import { RenderScratch, ScratchPool, metricPieces, renderMetrics } from '../../src/daemon/metrics';
import { ADMIN_STATES } from '../../src/daemon/backend';
import { literal } from '../../src/targets/resolve';
import type { Verdict } from '../../src/engine/probe-table';
import { referenceMetrics } from '../helpers/metrics-reference';

const fcParams = (runs: number): fc.Parameters<unknown> => {
  const seed = process.env.HALFOPEN_FC_SEED, p = process.env.HALFOPEN_FC_PATH;
  return { numRuns: runs, ...(seed ? { seed: Number(seed) } : {}), ...(p ? { path: p } : {}) };
};

/** Each SYN answered at the next poll with the verdict `answer` gives its slot (null: silent). */
class Table implements ProbeSlots {
  private readonly got = new Map<number, Verdict>();
  private pending: number[] = [];
  constructor(readonly capacity: number, private readonly answer: (slot: number) => Verdict | null) {}
  setSlot(): void {}
  clearSlot(i: number): void { this.got.delete(i); }
  rearmSlot(i: number): void { this.got.delete(i); }
  answered(i: number): boolean { return this.got.has(i); }
  verdict(i: number): Verdict | null { return this.got.get(i) ?? null; }
  pollSlots(): Uint32Array {
    const out: number[] = [];
    for (const s of this.pending) { const v = this.answer(s); if (v) { this.got.set(s, v); out.push(s); } }
    this.pending = [];
    return Uint32Array.from(out);
  }
  sendSlots(slots: Uint32Array): Promise<unknown> { for (const s of slots) this.pending.push(s); return Promise.resolve(); }
  counters(): Record<string, number> { return { rst_sent: 3, syn_ack: 7 }; }
}

const text = fc.string({ unit: fc.constantFrom('a', 'Z', '0', '-', '"', '\\', '\n', ' ', 'é', '€', '😀', '{', '}', '='), minLength: 1, maxLength: 12 });
const nameText = fc.string({ unit: fc.constantFrom('a', 'Z', '0', '-', '_', '.', ':'), minLength: 1, maxLength: 12 });
const backend = fc.record({
  name: nameText,
  labels: fc.dictionary(fc.constantFrom('zone', 'rack', 'backend', 'state', 'team_1'), text, { maxKeys: 3 }),
  weight: fc.option(fc.integer({ min: 0, max: 256 }), { nil: undefined }),
  slowstart: fc.option(fc.constantFrom('2s', '10s'), { nil: undefined }),
  v6: fc.boolean(),
  answer: fc.constantFrom(1, 2, 3, 0), // ho_probe_state (open, closed, unreachable) or silent
  // RTTs in ms: any, and about 1 s (where whole µs stop fitting six digits).
  rtt: fc.oneof(fc.double({ min: 1e-6, max: 1e6, noNaN: true }), fc.constantFrom(0, 0.000123456789, 1234567.891, 999.999, 1000, 1000.001), fc.integer({ min: 999_000, max: 1_001_000 }).map((us) => us / 1000)),
  admin: fc.constantFrom(...ADMIN_STATES),
  counts: fc.array(fc.oneof(fc.nat(), fc.constantFrom(0, 2 ** 40, 2 ** 53 - 1)), { minLength: 4, maxLength: 4 }),
  changes: fc.nat(),
});

type Spec = typeof backend extends fc.Arbitrary<infer T> ? T : never;

function monitorOf(list: Spec[], t0: number): Monitor {
  const seen = new Set<string>();
  const bs = list.filter((b) => !seen.has(b.name) && seen.add(b.name)).map((b, i) => ({
    name: b.name, host: b.v6 ? `2001:2::${i.toString(16)}` : `198.18.0.${i + 1}`, port: 80 + i, labels: b.labels,
    ...(b.weight !== undefined ? { weight: b.weight } : {}), ...(b.slowstart ? { slowstart: b.slowstart } : {}),
  }));
  const cfgs = parseConfig(JSON.stringify({ defaults: { interval: '1s', timeout: '500ms', rise: 1, fall: 1 }, backends: bs })).backends.map((cfg) => ({ cfg, addr: literal(cfg.host) }));
  const byName = new Map(list.map((b) => [b.name, b]));
  let m: Monitor | null = null;
  const table = new Table(capacityFor(cfgs), (slot) => {
    const b = m!.list().find((x) => x.slots.includes(slot));
    const spec = b && byName.get(b.cfg.name);
    if (!spec || !spec.answer) return null;
    return { state: spec.answer, rttMs: spec.rtt, ttl: 64, icmpType: 3, icmpCode: 1, replies: 1 };
  });
  m = new Monitor(table, 62000, 62999, () => 0.5);
  m.apply(cfgs, t0);
  for (let t = 0; t <= 1600; t += 50) m.tick(t0 + t);
  for (const b of m.list()) {
    const spec = byName.get(b.cfg.name)!;
    m.setAdmin(b.cfg.name, spec.admin, t0 + 1600);
    const c = b.store.counts, o = b.id * 4;
    for (let k = 0; k < 4; k++) c[o + k] = spec.counts[k];
    b.store.changes[b.id] = spec.changes;
  }
  return m;
}

/** Both renders at one frozen moment (check ages and staleness read the clock). */
function both(m: Monitor, at: number, extra?: () => string, perBackend?: boolean): [string, string] {
  const now = Date.now;
  Date.now = () => at;
  try {
    const opts = perBackend === undefined ? {} : { perBackend };
    return [renderMetrics(m, opts, extra), referenceMetrics(m, extra, opts)];
  } finally {
    Date.now = now;
  }
}

describe('/metrics as bytes', () => {
  test('the same bytes as the string templates, for any fleet', () => {
    const t0 = Date.now();
    // Check ages of seconds, and about 1,000 s and far beyond (where whole ms stop fitting six digits).
    const later = fc.oneof(fc.integer({ min: 1600, max: 20_000 }), fc.integer({ min: 999_000, max: 1_003_000 }), fc.integer({ min: 1_600, max: 1e10 }));
    fc.assert(fc.property(fc.array(backend, { minLength: 1, maxLength: 12 }), later, fc.boolean(), fc.option(fc.boolean(), { nil: undefined }),
      (list, later, withExtra, perBackend) => {
        const m = monitorOf(list, t0);
        const extra = withExtra ? () => '# HELP halfopen_push_x x\n# TYPE halfopen_push_x counter\nhalfopen_push_x{target="é\\"q"} 5\n' : undefined;
        const [got, want] = both(m, t0 + later, extra, perBackend);
        assert.equal(got, want);
      }), fcParams(300));
  });

  test('a fleet larger than the buffers: chunks taken in turns, the same bytes', () => {
    const t0 = Date.now();
    const list = Array.from({ length: 3000 }, (_, i) => ({ name: `backend-${i}`, labels: { zone: `z"${i % 7}"\\é` }, weight: undefined, slowstart: undefined, v6: i % 3 === 0,
      answer: (i % 10 === 0 ? 0 : 1) as Spec['answer'], rtt: 0.1 + i / 1000, admin: ADMIN_STATES[i % 3], counts: [i, 1, 2, 3], changes: i % 5 }));
    const m = monitorOf(list, t0);
    const [got, want] = both(m, t0 + 2000);
    assert.ok(got.length > 3 * 256 * 1024, 'the exposition needs more than the ring');
    assert.match(got, /^halfopen_backend_last_rtt_seconds\{backend="backend-1",address="198\.18\.0\.2",port="81",zone="z\\"1\\"\\\\é"\} 0\.000101$/m);
    assert.equal(got, want);
  });

  test('with no buffer free the render yields null until one is released, and never takes another', () => {
    const t0 = Date.now();
    const m = monitorOf(Array.from({ length: 2000 }, (_, i) => ({ name: `b${i}`, labels: {}, weight: undefined, slowstart: undefined, v6: false, answer: 1 as const, rtt: 1, admin: 'ready' as const, counts: [1, 2, 3, 4], changes: 0 })), t0);
    const scratch = new RenderScratch(2), ring = scratch.ring;
    const held: Uint8Array[] = [];
    let nulls = 0, chunks = 0;
    const it = metricPieces(m, scratch);
    for (let r = it.next(), guard = 0; !r.done && guard < 1_000_000; r = it.next(), guard++) {
      if (r.value) { chunks++; held.push(r.value); assert.ok(held.length <= 2, 'at most the ring\'s two buffers out at once'); continue; }
      nulls++;
      // The consumer frees the oldest chunk only when the render waits.
      if (!ring.hasFree && held.length) ring.release(held.shift()!);
    }
    assert.ok(chunks > 2 && nulls >= chunks - 2, `${chunks} chunks, ${nulls} waits`);
  });

  test('a scratch reused by the next render, after a render cut off midway, gives the same bytes', () => {
    const t0 = Date.now();
    const list = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ name: `${tag}-${i}`, labels: (i % 4 ? {} : { zone: `z${i % 9}` }) as Record<string, string>, weight: undefined, slowstart: undefined, v6: i % 5 === 0,
      answer: (i % 7 === 0 ? 0 : 1) as Spec['answer'], rtt: 0.2 + i / 500, admin: ADMIN_STATES[i % 3], counts: [i, 2, 1, 0], changes: i % 3 }));
    const scratch = new RenderScratch(2);
    const render = (m: Monitor, stopAfter = Infinity) => {
      const parts: Buffer[] = [];
      let k = 0;
      for (const piece of metricPieces(m, scratch)) {
        if (!piece) continue;
        if (k++ >= stopAfter) break; // a reader that went away: its chunks never released
        parts.push(Buffer.from(piece));
        scratch.ring.release(piece);
      }
      return Buffer.concat(parts).toString('utf8');
    };
    // A large fleet, then a small one with longer names (the arena is reused, then grown), then the large one again.
    const big = monitorOf(list(2500, 'b'), t0), small = monitorOf(list(300, 'a-much-longer-backend-name-than-before'), t0);
    const now = Date.now;
    Date.now = () => t0 + 2000;
    try {
      assert.equal(render(big), renderMetrics(big));
      const mem = scratch.mem;
      render(big, 1);
      assert.equal(render(small), renderMetrics(small));
      assert.equal(scratch.mem, mem, 'the arena is kept');
      assert.equal(render(big), renderMetrics(big));
    } finally {
      Date.now = now;
    }
  });

  test('the pool hands a scratch to one render at a time, and back once given', () => {
    const pool = new ScratchPool();
    const a = pool.take(), b = pool.take();
    assert.notEqual(a, b);
    pool.give(a);
    assert.equal(pool.take(), a);
    pool.give(b);
    pool.give(a);
    assert.equal(pool.take(), a);
    assert.equal(pool.take(), b);
  });
});
