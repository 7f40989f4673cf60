// Monitor.prepareApply (src/daemon/apply-plan.ts), checked with fast-check:
// a backend set applied in many small steps, with ticks and address changes
// between them, ends exactly where the one-shot apply() at the commit's time
// ends (the same backends in the same order, the same rows, slots, checks in
// flight, schedule and tick), and both go on the same way afterwards: the
// same checks sent at the same times, the same changes reported. Unchanged
// backends keep their very view through the plan, and backends learned while
// it runs stay (the list is made again when the comparison starts over).
//
// A failure prints fast-check's seed and path; rerun one with
// HALFOPEN_FC_SEED=<seed> HALFOPEN_FC_PATH=<path>. HALFOPEN_FC_RUNS sets the
// number of runs (default 100).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Monitor, ProbeSlots, ApplyEntry } from '../../src/daemon/monitor';
import { BackendConfig } from '../../src/daemon/config';
import { BackendStore } from '../../src/daemon/backend-store';
import { HO_PROBE_STATE_CLOSED, HO_PROBE_STATE_OPEN, HO_RESULT_PENDING } from '../../src/contract.generated';
import type { Verdict } from '../../src/engine/probe-table';
import { prng } from '../helpers/prng';

/** A probe table whose replies depend only on the slot, its address and the time: two copies given the same calls answer the same. */
class ScriptedSlots implements ProbeSlots {
  readonly capacity = 4096;
  now = 0;
  private readonly addr: (bigint | null)[] = [];
  private readonly sport = new Int32Array(this.capacity).fill(-1);
  private readonly state = new Uint8Array(this.capacity);
  private replies: Array<{ at: number; slot: number; sport: number; state: number }> = [];
  setSlot(i: number, addr: bigint, _port: number, sport: number): void { this.addr[i] = addr; this.sport[i] = sport; this.state[i] = HO_RESULT_PENDING; }
  clearSlot(i: number): void { this.addr[i] = null; this.sport[i] = -1; this.state[i] = HO_RESULT_PENDING; }
  rearmSlot(i: number, sport: number): void { this.sport[i] = sport; this.state[i] = HO_RESULT_PENDING; }
  answered(i: number): boolean { return this.state[i] !== HO_RESULT_PENDING; }
  verdict(i: number): Verdict | null { const s = this.state[i]; return s ? { state: s, rttMs: 0.5, ttl: 64, icmpType: 0, icmpCode: 0, replies: 1 } : null; }
  counters(): Record<string, number> { return {}; }
  sendSlots(slots: Uint32Array): Promise<unknown> {
    for (const slot of slots) {
      const a = Number((this.addr[slot] ?? 0n) & 0xffffn);
      const kind = (a + Math.floor(this.now / 700)) % 5; // some silent, some refusing, changing over time
      if (kind === 0) continue;
      this.replies.push({ at: this.now + ((a * 13 + slot) % 40), slot, sport: this.sport[slot], state: kind === 1 ? HO_PROBE_STATE_CLOSED : HO_PROBE_STATE_OPEN });
    }
    return Promise.resolve({ ok: true });
  }
  pollSlots(): Uint32Array {
    const out: number[] = [];
    this.replies = this.replies.filter((r) => {
      if (r.at > this.now) return true;
      if (this.sport[r.slot] === r.sport && this.state[r.slot] === HO_RESULT_PENDING) { this.state[r.slot] = r.state; out.push(r.slot); }
      return false;
    });
    return Uint32Array.from(out);
  }
}

const timingArb = fc.record({
  interval: fc.constantFrom(100, 250, 1000),
  timeout: fc.constantFrom(20, 90, 240),
  fastinter: fc.constantFrom(50, 100, 250),
  rise: fc.integer({ min: 1, max: 3 }),
  fall: fc.integer({ min: 1, max: 3 }),
});
type Timing = typeof timingArb extends fc.Arbitrary<infer T> ? T : never;

/** What happens to one running backend in the new list. */
const editArb = fc.constantFrom('keep', 'keep', 'keep', 'drop', 'address', 'port', 'timing', 'source', 'mark', 'riseFall', 'rename', 'same-copy', 'unresolve');

const scenarioArb = fc.record({
  size: fc.integer({ min: 0, max: 60 }),
  timings: fc.array(timingArb, { minLength: 1, maxLength: 3 }),
  edits: fc.array(editArb, { minLength: 60, maxLength: 60 }),
  add: fc.integer({ min: 0, max: 8 }),
  reorder: fc.boolean(),
  warmup: fc.integer({ min: 0, max: 40 }),
  chunk: fc.integer({ min: 1, max: 7 }),
  /** Between two steps: ticks (0-2), and now and then an address change or a learned backend (the plan starts over). */
  between: fc.array(fc.record({ ticks: fc.integer({ min: 0, max: 2 }), resolve: fc.integer({ min: 0, max: 30 }) }), { minLength: 1, maxLength: 40 }),
  after: fc.integer({ min: 1, max: 60 }),
  seed: fc.integer(),
});
type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never;

function cfgOf(name: string, id: number, t: Timing, port = 80): BackendConfig {
  return {
    name, host: `198.18.${id >> 8}.${id & 255}`, port, labels: { zone: `z${id % 3}` }, interval: t.interval, timeout: Math.min(t.timeout, t.interval), rise: t.rise, fall: t.fall,
    fastinter: t.fastinter, downinter: t.interval, jitter: 0.1, initial: 'up', slowstart: 0, logFailures: true, resolveInterval: 30_000,
  };
}
const addrOf = (id: number) => 0xffffc6120000n + BigInt(id);

/** Everything a monitor holds about its backends that a caller or the next tick can see. */
function snapshot(m: Monitor): unknown {
  const store = (m as unknown as { store: BackendStore }).store;
  const rows: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(store)) if (ArrayBuffer.isView(v)) rows[k] = Array.from(v as unknown as ArrayLike<number>);
  return {
    backends: m.list().map((b) => ({ name: b.cfg.name, cfg: b.cfg, addr: b.addr, unresolved: b.unresolved, id: b.id, slots: b.slots, record: b.record })),
    rows,
    tick: (m as unknown as { tickMs: number }).tickMs,
    free: [...(m as unknown as { free: Iterable<number> }).free],
  };
}

/** Over every scenario of the run: so the test cannot pass by taking one step or never starting over. */
let restarts = 0, stepsTaken = 0, learnedKept = 0;

async function runScenario(s: Scenario): Promise<void> {
  const t0 = 2_000_000;
  let id = 0;
  const running: ApplyEntry[] = Array.from({ length: s.size }, () => { const i = id++; return { cfg: cfgOf(`b${i}`, i, s.timings[i % s.timings.length]), addr: addrOf(i) }; });
  // The new list: every running backend edited, some added, maybe in another order.
  const rnd = prng(s.seed);
  const next: ApplyEntry[] = [];
  running.forEach((x, k) => {
    const c = x.cfg, t = s.timings[(k + 1) % s.timings.length];
    switch (s.edits[k]) {
      case 'keep': next.push(x); break;
      case 'drop': break;
      case 'address': { const i = id++; next.push({ cfg: { ...c, host: `198.18.${i >> 8}.${i & 255}` }, addr: addrOf(i) }); break; }
      case 'port': next.push({ cfg: { ...c, port: 81 }, addr: x.addr }); break;
      case 'timing': next.push({ cfg: { ...c, interval: t.interval, timeout: Math.min(t.timeout, t.interval), fastinter: t.fastinter, downinter: t.interval }, addr: x.addr }); break;
      case 'source': next.push({ cfg: { ...c, source: '198.18.255.1' }, addr: x.addr }); break;
      case 'mark': next.push({ cfg: { ...c, mark: 7 }, addr: x.addr }); break;
      case 'riseFall': next.push({ cfg: { ...c, rise: c.rise + 1 }, addr: x.addr }); break;
      case 'rename': next.push({ cfg: { ...c, name: `${c.name}-renamed` }, addr: x.addr }); break;
      case 'same-copy': next.push({ cfg: { ...c, labels: { ...c.labels } }, addr: x.addr }); break; // equal by value, another object
      case 'unresolve': next.push({ cfg: { ...c, host: `b${k}.example` }, addr: null, unresolved: `b${k}.example: not found` }); break;
    }
  });
  for (let j = 0; j < s.add; j++) { const i = id++; next.push({ cfg: cfgOf(`b${i}`, i, s.timings[i % s.timings.length]), addr: addrOf(i) }); }
  if (s.reorder) for (let i = next.length - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [next[i], next[j]] = [next[j], next[i]]; }

  // Two monitors from the same start; a runs the one-shot apply, b the plan in steps.
  const make = () => {
    const slots = new ScriptedSlots();
    const m = new Monitor(slots, 61000, 61999, prng(s.seed ^ 0x5bd1e995));
    // A store that must grow (in steps, during the plan) from the first backends on.
    (m as unknown as { store: BackendStore }).store = new BackendStore(2);
    const sent: string[] = [];
    m.observer = { sent: (b, slot, due, now) => sent.push(`${now} ${b.cfg.name} ${slot} ${due}`) };
    m.on('change', (ev: { backend: string; to: string; reason: string; time: string }) => sent.push(`${ev.time} ${ev.backend} ${ev.to} ${ev.reason}`));
    return { m, slots, sent, now: t0 };
  };
  const a = make(), b = make();
  const tick = async (x: ReturnType<typeof make>) => {
    x.now += 10;
    x.slots.now = x.now;
    x.m.tick(x.now);
    await Promise.resolve();
  };
  for (const x of [a, b]) {
    x.m.apply(running, t0);
    for (let k = 0; k < s.warmup; k++) await tick(x);
  }
  assert.deepEqual(snapshot(b.m), snapshot(a.m), 'the two monitors start alike');

  // What happens between steps, done to b while its plan runs and to a before its apply.
  const actions: Array<(x: ReturnType<typeof make>) => Promise<void> | void> = [];
  const between = (k: number) => {
    const w = s.between[k % s.between.length];
    const out: Array<(x: ReturnType<typeof make>) => Promise<void> | void> = [];
    for (let j = 0; j < w.ticks; j++) out.push(tick);
    const names = running.map((r) => r.cfg.name);
    if (w.resolve === 1 && names.length) { const n = names[k % names.length]; out.push((x) => x.m.setAddress(n, addrOf(900 + k), '', x.now)); }
    if (w.resolve === 2) out.push((x) => { x.m.learn(cfgOf(`learned${k}`, 2000 + k, s.timings[0]), addrOf(2000 + k), x.now); });
    return out;
  };
  // The new list and the backends learned meanwhile (as serve lists them again when the plan starts over).
  const listFor = (m: Monitor) => () => [...next, ...m.list().filter((v) => v.cfg.name.startsWith('learned')).map((v) => ({ cfg: v.cfg, addr: v.addr }))];
  const before = new Map(b.m.list().map((v) => [v.cfg.name, v]));
  const plan = b.m.prepareApply(listFor(b.m), b.now);
  plan.chunk = s.chunk;
  let steps = 0;
  while (!plan.step(0)) {
    assert.ok(++steps < 10_000, 'the plan never got ready');
    for (const act of between(steps)) { actions.push(act); await act(b); }
  }
  plan.commit(b.now);
  for (const act of actions) await act(a);
  a.m.apply([...listFor(a.m)()], a.now);
  assert.equal(a.now, b.now);
  assert.deepEqual(snapshot(b.m), snapshot(a.m), 'the plan in steps ends where the one-shot apply does');
  // The new list is what runs, in its order (a kept backend keeps its config object, equal by value).
  assert.deepEqual(b.m.list().map((v) => [v.live, v.cfg, v.addr, v.unresolved]), plan.list.map((x) => [true, x.cfg, x.addr, x.unresolved ?? '']));
  assert.deepEqual(plan.list.slice(0, next.length), next);
  restarts += (plan as unknown as { restarts: number }).restarts;
  stepsTaken += steps;
  learnedKept += plan.list.length - next.length;
  // Unchanged backends keep their very view (row, slots, checks in flight, agenda entry).
  // (An address change between steps retires the view it replaces: those are not live.)
  for (const x of next) {
    const v = before.get(x.cfg.name);
    const now = b.m.get(x.cfg.name);
    if (v && v.live && now && v.addr === x.addr && JSON.stringify(v.cfg) === JSON.stringify(x.cfg)) assert.equal(now, v, `${x.cfg.name}: unchanged, yet a new view`);
  }
  // And both go on alike.
  a.sent.length = 0; b.sent.length = 0;
  for (let k = 0; k < s.after; k++) { await tick(a); await tick(b); }
  assert.deepEqual(b.sent, a.sent, 'after the commit, the same checks and changes');
  assert.deepEqual(snapshot(b.m), snapshot(a.m));
  assert.equal(b.m.anomalies, 0);
}

describe('apply plan (fast-check)', () => {
  test('a plan run in steps with ticks between them ends as the one-shot apply does', async () => {
    const runs = Number(process.env.HALFOPEN_FC_RUNS ?? 100);
    const seed = process.env.HALFOPEN_FC_SEED === undefined ? undefined : Number(process.env.HALFOPEN_FC_SEED);
    const out = await fc.check(fc.asyncProperty(scenarioArb, runScenario), {
      numRuns: runs, seed, path: process.env.HALFOPEN_FC_PATH, includeErrorInReport: true,
    });
    if (out.failed) assert.fail(`${fc.defaultReportMessage(out)}\nrerun: HALFOPEN_FC_SEED=${out.seed} HALFOPEN_FC_PATH=${out.counterexamplePath}`);
    process.stdout.write(`# apply plan: ${out.numRuns} runs, seed ${out.seed}; ${stepsTaken} steps, ${restarts} comparisons started over, ${learnedKept} backends learned meanwhile kept\n`);
    assert.ok(stepsTaken > 10 * runs && restarts > 0 && learnedKept > 0, `the runs took too few steps, never started over or learned nothing: ${stepsTaken} steps, ${restarts} restarts, ${learnedKept} learned`);
  });

  test('a name listed twice is refused before anything changes', () => {
    const m = new Monitor(new ScriptedSlots(), 61000, 61999);
    const x = { cfg: cfgOf('b0', 0, { interval: 1000, timeout: 90, fastinter: 250, rise: 2, fall: 3 }), addr: addrOf(0) };
    assert.throws(() => m.apply([x, x]), /backend b0 is listed twice/);
    assert.equal(m.size, 0);
  });

  test('growStep grows every per-row array of the store', () => {
    const s = new BackendStore(4);
    let calls = 0;
    while (!s.growStep(1000, 0)) calls++;
    assert.ok(calls > 10, 'one array a call when out of time');
    assert.equal(s.capacity, 1000);
    for (const [k, v] of Object.entries(s)) if (ArrayBuffer.isView(v)) assert.equal((v as unknown as ArrayLike<number>).length % 1000, 0, `${k} not grown`);
  });
});
