// Properties of the serve scheduler (src/daemon/monitor.ts), checked with
// fast-check over random fleets, timings, reply patterns and reloads, on a
// fake clock against a probe table that behaves like the kernel's: a reply
// lands only while its slot still carries the source port of the check it
// answers, and only the first one counts.
//
// For every run: each tick ends (the agenda never holds an entry due again in
// the same tick); every check leaves at most one tick after it is due (or
// after a slot freed for it); no backend goes unchecked for longer than its
// slowest interval, jitter, timeout and two ticks; every result applied is
// the reply to that very check or "no response", each check at most once and
// in send order; up/down changes follow rise/fall exactly: every result
// applied is replayed through a reference written here (RiseFall, not the
// daemon's Health), the backend's state is compared with it after every
// result, and every change event must be the reference's transition at that
// very result (no change it does not make, none it makes left unreported).
//
// A failure prints fast-check's seed and path; rerun one with
// HALFOPEN_FC_SEED=<seed> HALFOPEN_FC_PATH=<path>. HALFOPEN_FC_RUNS sets the
// number of runs (default 150).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Monitor, ProbeSlots, Backend, ChangeEvent, tickFor } from '../../src/daemon/monitor';
import { BackendConfig } from '../../src/daemon/config';
import { HO_PROBE_STATE_CLOSED, HO_RESULT_PENDING, HO_PROBE_STATE_OPEN } from '../../src/contract.generated';
import type { Verdict } from '../../src/engine/probe-table';
import { prng } from '../helpers/prng';

type Pattern = { kind: 'open' | 'rst' | 'silent' } | { kind: 'late' } | { kind: 'flap'; period: number } | { kind: 'random' };

interface Reply { at: number; slot: number; sport: number; state: number; check: number }

/**
 * The reference for up/down, from HAProxy's documented rule and nothing of
 * the daemon's: an up backend goes down after `fall` consecutive failed
 * checks, a down one comes up after `rise` consecutive good ones; a result of
 * the other kind starts the count again.
 */
class RiseFall {
  private run = 0;
  constructor(readonly rise: number, readonly fall: number, public state: 'up' | 'down') {}
  /** Records one result; the new state when it changed, else null. */
  record(ok: boolean): 'up' | 'down' | null {
    const against = this.state === 'up' ? !ok : ok;
    if (!against) { this.run = 0; return null; }
    this.run++;
    if (this.run < (this.state === 'up' ? this.fall : this.rise)) return null;
    this.state = this.state === 'up' ? 'down' : 'up';
    this.run = 0;
    return this.state;
  }
}

/** A probe table with the kernel's matching rules and scripted backends. */
class FakeKernel implements ProbeSlots {
  readonly capacity: number;
  now = 0;
  private readonly sport: Int32Array;
  private readonly state: Uint8Array;
  private readonly check: Int32Array;
  private readonly owner: (bigint | null)[] = [];
  private replies: Reply[] = [];
  private polled: number[] = [];
  private checkSeq = 0;
  /** Per check: the reply state that landed for it (0 = none). */
  readonly landed = new Map<number, number>();
  readonly patterns = new Map<bigint, { p: Pattern; timeout: number }>();

  constructor(capacity: number, private readonly rnd: () => number) {
    this.capacity = capacity;
    this.sport = new Int32Array(capacity).fill(-1);
    this.state = new Uint8Array(capacity);
    this.check = new Int32Array(capacity);
  }
  setSlot(i: number, addr: bigint, _port: number, sport: number): void { this.owner[i] = addr; this.sport[i] = sport; this.state[i] = HO_RESULT_PENDING; this.check[i] = 0; }
  clearSlot(i: number): void { this.owner[i] = null; this.sport[i] = -1; this.state[i] = HO_RESULT_PENDING; this.check[i] = 0; }
  rearmSlot(i: number, sport: number): void { this.sport[i] = sport; this.state[i] = HO_RESULT_PENDING; this.check[i] = ++this.checkSeq; }
  checkIn(i: number): number { return this.check[i]; }
  answered(i: number): boolean { return this.state[i] !== HO_RESULT_PENDING; }
  verdict(i: number): Verdict | null {
    const s = this.state[i];
    return s ? { state: s, rttMs: 0.1, ttl: 64, icmpType: 0, icmpCode: 0, replies: 1 } : null;
  }
  counters(): Record<string, number> { return {}; }
  /** As the sender does: slot k's SYN leaves waits[k] ms after the call, and its reply comes after that. */
  sendSlots(slots: Uint32Array, waits?: Uint16Array): Promise<unknown> {
    slots.forEach((slot, k) => {
      const addr = this.owner[slot];
      const spec = addr === null || addr === undefined ? undefined : this.patterns.get(addr);
      if (!spec) return;
      const leaves = this.now + (waits ? waits[k] : 0);
      let kind = spec.p.kind;
      if (kind === 'flap') kind = Math.floor(leaves / (spec.p as { period: number }).period) % 2 ? 'silent' : 'open';
      if (kind === 'random') kind = (['open', 'rst', 'silent', 'late'] as const)[Math.floor(this.rnd() * 4)];
      if (kind === 'silent') return;
      const delay = kind === 'late' ? spec.timeout + 1 + Math.floor(this.rnd() * 2 * spec.timeout) : Math.floor(this.rnd() * spec.timeout);
      this.replies.push({ at: leaves + delay, slot, sport: this.sport[slot], state: kind === 'rst' ? HO_PROBE_STATE_CLOSED : HO_PROBE_STATE_OPEN, check: this.check[slot] });
    });
    return Promise.resolve({ ok: true });
  }
  pollSlots(): Uint32Array {
    const keep: Reply[] = [];
    for (const r of this.replies) {
      if (r.at > this.now) { keep.push(r); continue; }
      // XDP's exact match: same source port (so the same check), first verdict only.
      if (this.sport[r.slot] !== r.sport || this.state[r.slot] !== HO_RESULT_PENDING) continue;
      this.state[r.slot] = r.state;
      this.landed.set(r.check, r.state);
      this.polled.push(r.slot);
    }
    this.replies = keep;
    const out = Uint32Array.from(this.polled);
    this.polled = [];
    return out;
  }
}

const timingArb = fc.record({
  interval: fc.integer({ min: 5, max: 3000 }),
  timeoutFrac: fc.double({ min: 0.01, max: 1, noNaN: true }),
  fastinter: fc.integer({ min: 1, max: 3000 }),
  downinter: fc.integer({ min: 1, max: 5000 }),
  rise: fc.integer({ min: 1, max: 6 }),
  fall: fc.integer({ min: 1, max: 6 }),
  jitter: fc.double({ min: 0, max: 0.5, noNaN: true }),
  initial: fc.constantFrom('up' as const, 'down' as const),
});

const patternArb: fc.Arbitrary<Pattern> = fc.oneof(
  fc.constant({ kind: 'open' as const }), fc.constant({ kind: 'rst' as const }), fc.constant({ kind: 'silent' as const }),
  fc.constant({ kind: 'late' as const }), fc.constant({ kind: 'random' as const }),
  fc.integer({ min: 20, max: 5000 }).map((period) => ({ kind: 'flap' as const, period })),
);

const scenarioArb = fc.record({
  // Mostly small fleets, now and then a large one.
  size: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 40 }) }, { weight: 1, arbitrary: fc.integer({ min: 41, max: 2000 }) }),
  timings: fc.array(timingArb, { minLength: 1, maxLength: 4 }),
  patterns: fc.array(patternArb, { minLength: 1, maxLength: 6 }),
  duration: fc.integer({ min: 500, max: 20_000 }),
  reloads: fc.array(fc.record({ at: fc.double({ min: 0, max: 1, noNaN: true }), drop: fc.double({ min: 0, max: 0.3, noNaN: true }), add: fc.integer({ min: 0, max: 5 }), retime: fc.double({ min: 0, max: 0.3, noNaN: true }) }), { maxLength: 3 }),
  seed: fc.integer(),
});

type Timing = typeof timingArb extends fc.Arbitrary<infer T> ? T : never;
type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never;

function cfgOf(name: string, host: string, t: Timing): BackendConfig {
  return {
    name, host, port: 80, labels: {}, interval: t.interval, timeout: Math.max(1, Math.floor(t.interval * t.timeoutFrac)), rise: t.rise, fall: t.fall,
    fastinter: t.fastinter, downinter: t.downinter, jitter: t.jitter, initial: t.initial, slowstart: 0, logFailures: false, resolveInterval: 30_000,
  };
}

/** Over every scenario of the run: so the test cannot pass by replaying nothing. */
const replayed = { results: 0, compared: 0, transitions: 0 };

/** Runs one scenario; throws (assert) on any property violation. */
async function runScenario(s: Scenario): Promise<void> {
  const rnd = prng(s.seed);
  const t0 = 1_000_000;
  let nextId = 0;
  const make = (timing = s.timings[nextId % s.timings.length]) => {
    const id = nextId++;
    const addr = 0xffffc6120000n + BigInt(id);
    return { cfg: cfgOf(`b${id}`, `198.18.${id >> 8}.${id & 255}`, timing), addr, pattern: s.patterns[id % s.patterns.length] };
  };
  let fleet = Array.from({ length: s.size }, () => make());
  const kernel = new FakeKernel(Math.max(1024, fleet.length * 8 + 64 * 8), rnd);
  const register = () => { for (const b of fleet) kernel.patterns.set(b.addr, { p: b.pattern, timeout: b.cfg.timeout }); };
  register();
  const monitor = new Monitor(kernel, 61000, 61999, rnd);

  // Bookkeeping for the properties.
  const sentAt = new Map<string, number[]>();           // per backend name: send times
  const queued = new Map<number, number[]>();           // per backend record (b.record survives a reload): check ids in flight, send order
  const applied = new Set<number>();
  // Per backend record (a reload keeps it while name, host and rise/fall stay): the reference,
  // the transition of its latest result not yet reported, and the backends to compare after the step.
  const models = new Map<number, { ref: RiseFall; unreported: 'up' | 'down' | null; lastCheck: number; checked: Backend[] }>();
  /** A fresh health record starts fully up or fully down, as configured (cfg.initial). */
  const adopt = () => {
    for (const b of monitor.list()) if (!models.has(b.record)) models.set(b.record, { ref: new RiseFall(b.cfg.rise, b.cfg.fall, b.cfg.initial), unreported: null, lastCheck: -1, checked: [] });
  };
  let results = 0, compared = 0;
  let step = tickFor(fleet.map((b) => b.cfg));
  let worstLate = 0;
  const violations: string[] = [];
  monitor.observer = {
    sent(b, slot, from, now) {
      if (process.env.HALFOPEN_FC_TRACE) process.stderr.write(`${now - t0} sent ${b.cfg.name} slot ${slot} from ${from - t0} inflight ${b.inflight} ${b.health.state}\n`);
      if (now - from > step) violations.push(`${b.cfg.name}: check due at ${from - t0} left at ${now - t0}, more than one tick (${step} ms) late`);
      worstLate = Math.max(worstLate, now - from);
      (sentAt.get(b.cfg.name) ?? sentAt.set(b.cfg.name, []).get(b.cfg.name)!).push(now);
      // With one in flight (this one), older checks were settled or dropped by a reload.
      if (b.inflight === 1) queued.set(b.record, []);
      queued.get(b.record)!.push(kernel.checkIn(slot));
    },
    applied(b, r, slot) {
      if (process.env.HALFOPEN_FC_TRACE) process.stderr.write(`${kernel.now - t0} applied ${b.cfg.name} slot ${slot} ${r.state} inflight ${b.inflight}\n`);
      const id = kernel.checkIn(slot);
      results++;
      if (applied.has(id)) violations.push(`${b.cfg.name}: check ${id} applied twice`);
      applied.add(id);
      const q = queued.get(b.record) ?? [];
      const head = q.shift();
      if (head !== id) violations.push(`${b.cfg.name}: applied check ${id} out of send order (expected ${head})`);
      const landed = kernel.landed.get(id);
      const want = landed === HO_PROBE_STATE_OPEN ? 'open' : landed === HO_PROBE_STATE_CLOSED ? 'closed' : 'filtered';
      if (r.state !== want) violations.push(`${b.cfg.name}: check ${id} applied as ${r.state}, its own reply says ${want}`);
      const model = models.get(b.record);
      if (!model) { violations.push(`${b.cfg.name}: a result for a health record the reference never saw created`); return; }
      // The previous result's transition must have been reported by now.
      if (model.unreported) violations.push(`${b.cfg.name}: rise/fall went ${model.unreported} after check ${model.lastCheck}, and no change event said so`);
      model.unreported = model.ref.record(r.ok);
      model.lastCheck = id;
      model.checked.push(b);
    },
  };
  const changes: Array<{ ev: ChangeEvent; b: Backend }> = [];
  monitor.on('change', (ev: ChangeEvent, b: Backend) => {
    changes.push({ ev, b });
    if (ev.reason === 'stale') { violations.push(`${ev.backend}: reported stale at ${Date.parse(ev.time) - t0}`); return; }
    // The change must be the reference's transition at the result just applied, and reported once.
    const model = models.get(b.record);
    if (!model || model.unreported !== ev.to) violations.push(`${ev.backend}: changed to ${ev.to}, rise/fall says ${model ? `${model.ref.state} with no change at check ${model.lastCheck}` : 'nothing (unknown health record)'}`);
    else { model.unreported = null; replayed.transitions++; }
  });
  /** After each step: every backend that got a result holds the reference's state, and reported every change. */
  const compare = () => {
    for (const b of monitor.list()) {
      const model = models.get(b.record);
      if (!model || !model.checked.length) continue;
      model.checked.length = 0;
      compared++;
      if (b.health.state !== model.ref.state) violations.push(`${b.cfg.name}: health says ${b.health.state}, rise/fall says ${model.ref.state} after check ${model.lastCheck}`);
      if (model.unreported) violations.push(`${b.cfg.name}: rise/fall went ${model.unreported} after check ${model.lastCheck}, and no change event said so`);
    }
  };

  const reloads = [...s.reloads].sort((a, b) => a.at - b.at).map((r) => ({ ...r, t: t0 + Math.floor(r.at * s.duration) }));
  kernel.now = t0;
  monitor.apply(fleet.map(({ cfg, addr }) => ({ cfg, addr })), t0);
  adopt();
  const born = new Map(fleet.map((b) => [b.cfg.name, t0]));
  for (let now = t0; now <= t0 + s.duration; now += step) {
    while (reloads.length && reloads[0].t <= now) {
      const r = reloads.shift()!;
      const kept = fleet.filter(() => rnd() >= r.drop);
      const retimed = kept.map((b) => (rnd() < r.retime ? { ...b, cfg: { ...b.cfg, ...cfgOf(b.cfg.name, b.cfg.host, s.timings[Math.floor(rnd() * s.timings.length)]) } } : b));
      const added = Array.from({ length: r.add }, () => make());
      fleet = [...retimed, ...added];
      register();
      monitor.apply(fleet.map(({ cfg, addr }) => ({ cfg, addr })), now);
      adopt();
      for (const b of retimed) if (b.cfg !== kept.find((k) => k.cfg.name === b.cfg.name)!.cfg) born.set(b.cfg.name, now);
      for (const b of added) born.set(b.cfg.name, now);
      step = tickFor(fleet.map((b) => b.cfg));
    }
    kernel.now = now;
    monitor.tick(now);
    await Promise.resolve(); // the batch's promise settles, as the sender's reply would
    await Promise.resolve();
    compare();
    if (violations.length) break;
  }
  compare();
  assert.equal(monitor.anomalies, 0, 'an agenda entry was due again within its own tick');
  assert.deepEqual(violations.slice(0, 5), []);
  replayed.results += results; replayed.compared += compared;
  // No starvation: every backend was checked within its slowest spacing of the end.
  const end = t0 + s.duration;
  for (const b of fleet) {
    const c = b.cfg;
    const gap = Math.max(c.interval, c.downinter, c.fastinter) * (1 + c.jitter) + c.timeout + 2 * step + 1;
    const times = sentAt.get(c.name) ?? [];
    if (end - born.get(c.name)! > gap) assert.ok(times.length && end - times[times.length - 1] <= gap, `${c.name} starved: last check at ${times.length ? times[times.length - 1] - t0 : 'never'}, end ${end - t0}, allowed gap ${gap}`);
  }
}

describe('serve scheduler properties (fast-check)', () => {
  test('ticks end, checks leave on time, nothing starves, results are exact, rise/fall is exact', async () => {
    const runs = Number(process.env.HALFOPEN_FC_RUNS ?? 150);
    const seed = process.env.HALFOPEN_FC_SEED === undefined ? undefined : Number(process.env.HALFOPEN_FC_SEED);
    const out = await fc.check(fc.asyncProperty(scenarioArb, runScenario), {
      numRuns: runs, seed, path: process.env.HALFOPEN_FC_PATH, includeErrorInReport: true,
    });
    if (out.failed) {
      // fast-check's report names the seed and path that reproduce it.
      assert.fail(`${fc.defaultReportMessage(out)}\nrerun: HALFOPEN_FC_SEED=${out.seed} HALFOPEN_FC_PATH=${out.counterexamplePath}`);
    }
    process.stdout.write(`# scheduler properties: ${out.numRuns} runs, seed ${out.seed}; ${replayed.results} results replayed through the reference, ${replayed.transitions} transitions\n`);
    assert.ok(replayed.results > 1000 && replayed.compared > 100 && replayed.transitions > 10, `the runs replayed too little: ${JSON.stringify(replayed)}`);
  });

  test('the three configurations that once hung the scheduler tick on', async () => {
    const hung: Array<[string, number, Pattern[]]> = [
      ['5,000 backends, 1s / 900ms, a tenth silent', 5000, [{ kind: 'open' }, { kind: 'open' }, { kind: 'open' }, { kind: 'open' }, { kind: 'open' }, { kind: 'open' }, { kind: 'open' }, { kind: 'open' }, { kind: 'open' }, { kind: 'silent' }]],
      ['one backend, 5ms / 5ms', 1, [{ kind: 'silent' }]],
      ['one silent backend, 50ms / 40ms', 1, [{ kind: 'silent' }]],
    ];
    const timing = [
      { interval: 1000, timeoutFrac: 0.9, fastinter: 1000, downinter: 1000, rise: 2, fall: 3, jitter: 0.1, initial: 'up' as const },
      { interval: 5, timeoutFrac: 1, fastinter: 5, downinter: 5, rise: 2, fall: 3, jitter: 0.1, initial: 'up' as const },
      { interval: 50, timeoutFrac: 0.8, fastinter: 50, downinter: 50, rise: 2, fall: 3, jitter: 0.1, initial: 'up' as const },
    ];
    for (let i = 0; i < hung.length; i++) {
      const [, size, patterns] = hung[i];
      await runScenario({ size, timings: [timing[i]], patterns, duration: 10_000, reloads: [], seed: 7 + i });
    }
  });
});
