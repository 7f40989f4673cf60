// The serve scheduler's timeline, driven tick by tick against a scripted
// table (the kernel path itself is covered by test/integration/serve*.test):
// when checks go out, how they overlap, and the order results are applied in.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Monitor, depthFor, departureStep, ChangeEvent, ProbeSlots } from '../../src/daemon/monitor';
import { parseConfig } from '../../src/daemon/config';
import { HO_RESULT_PENDING, HO_PROBE_STATE_OPEN } from '../../src/contract.generated';
import type { Verdict } from '../../src/engine/probe-table';

/** A probe table whose replies a test scripts: answer(slot) when "the kernel" sees one. */
class ScriptedTable implements ProbeSlots {
  readonly capacity = 64;
  readonly sends: Array<{ t: number; slot: number }> = [];
  private readonly state = new Map<number, number>();
  private polled: number[] = [];
  now = 0;
  /** Whether the backend answers SYNs sent from now on, and after how long. */
  reply: 'open' | 'silent' = 'open';
  private readonly replies: Array<{ at: number; slot: number }> = [];
  setSlot(): void {}
  counters(): Record<string, number> { return {}; }
  clearSlot(i: number): void { this.state.delete(i); }
  rearmSlot(i: number): void { this.state.delete(i); }
  answered(i: number): boolean { return (this.state.get(i) ?? HO_RESULT_PENDING) !== HO_RESULT_PENDING; }
  verdict(i: number): Verdict | null {
    const s = this.state.get(i);
    return s ? { state: s, rttMs: 0.1, ttl: 64, icmpType: 0, icmpCode: 0, replies: 1 } : null;
  }
  pollSlots(): Uint32Array {
    this.depart();
    for (const r of this.replies.filter((x) => x.at <= this.now)) { this.state.set(r.slot, HO_PROBE_STATE_OPEN); this.polled.push(r.slot); }
    this.replies.splice(0, this.replies.length, ...this.replies.filter((x) => x.at > this.now));
    const out = Uint32Array.from(this.polled);
    this.polled = [];
    return out;
  }
  /** SYNs handed over, not yet left (the sender holds each until its wait is over). */
  private readonly leaving: Array<{ t: number; slot: number }> = [];
  /** The SYNs that left by now: recorded, and answered or not as `reply` says at that moment. */
  private depart(): void {
    for (const x of this.leaving.filter((y) => y.t <= this.now)) {
      this.sends.push(x);
      if (this.reply === 'open') this.replies.push({ at: x.t + 1, slot: x.slot });
    }
    this.leaving.splice(0, this.leaving.length, ...this.leaving.filter((y) => y.t > this.now));
  }
  /** As the sender does: slot k's SYN leaves waits[k] ms after the call. */
  sendSlots(slots: Uint32Array, waits?: Uint16Array): Promise<unknown> {
    slots.forEach((slot, k) => this.leaving.push({ t: this.now + (waits ? waits[k] : 0), slot }));
    this.depart();
    return Promise.resolve({ ok: true });
  }
  /** A reply that arrives late, for the check sent in `slot`. */
  answerAt(at: number, slot: number): void { this.replies.push({ at, slot }); }
}

function setup(timing: string) {
  const cfg = parseConfig(`defaults: { ${timing}, jitter: 0 }\nbackends:\n  - { name: b, host: 198.18.0.1, port: 80 }\n`);
  const table = new ScriptedTable();
  const monitor = new Monitor(table, 61000, 61999);
  const changes: Array<{ t: number; ev: ChangeEvent }> = [];
  monitor.on('change', (ev: ChangeEvent) => changes.push({ t: table.now, ev }));
  monitor.apply([{ cfg: cfg.backends[0], addr: 0xffffc6120001n }]);
  const b = monitor.get('b')!;
  b.nextAt = 0; // first check at t = 0 instead of a random point in the interval
  (monitor as unknown as { wake(b: unknown): void }).wake(b);
  /** Ticks every `step` ms until `until`, letting each send complete. */
  const run = async (until: number, step = 10) => {
    for (; table.now <= until; table.now += step) {
      monitor.tick(table.now);
      await Promise.resolve();
      await Promise.resolve();
    }
  };
  return { cfg: cfg.backends[0], table, monitor, b, changes, run };
}

describe('serve scheduler', () => {
  test('depth: one slot when the timeout is shorter than every interval, more when checks overlap', () => {
    const cfg = (t: string) => parseConfig(`defaults: { ${t} }\nbackends:\n  - { name: b, host: 198.18.0.1, port: 80 }\n`).backends[0];
    assert.equal(depthFor(cfg('interval: 2s, timeout: 1s')), 1);
    assert.equal(depthFor(cfg('interval: 1s, timeout: 500ms, fastinter: 250ms')), 3);
    assert.equal(depthFor(cfg('interval: 1s, timeout: 1s')), 2);
    assert.equal(depthFor(cfg('interval: 1s, timeout: 1s, fastinter: 10ms')), 8);
  });

  test('departure steps: about 32 SYNs each, whole ms from 1 to 10', () => {
    assert.equal(departureStep(5000, 50), 1); // 100,000 checks/s
    assert.equal(departureStep(500, 50), 4); // 10,000 checks/s
    assert.equal(departureStep(1, 50), 10);
    assert.equal(departureStep(0, 50), 1);
    for (let n = 1; n <= 10_000; n += 7) {
      const q = departureStep(n, 50);
      assert.ok(Number.isInteger(q) && q >= 1 && q <= 10);
      assert.ok(q === 10 || (n * q) / 50 >= 32, `${n} a tick: ${q} ms steps carry ${(n * q) / 50}`);
    }
  });

  test('a healthy backend is checked once per interval, each check answered', async () => {
    const { table, b, run } = setup('interval: 1s, timeout: 500ms, fastinter: 250ms, rise: 2, fall: 3');
    await run(4990);
    assert.deepEqual(table.sends.map((s) => s.t), [0, 1000, 2000, 3000, 4000]);
    assert.equal(b.state, 'up');
    assert.equal(b.counts.open, 5);
  });

  test('a backend that falls silent: next checks at fastinter without waiting for the timeout; down (fall-1) x fastinter + timeout after the first unanswered check', async () => {
    const { table, b, changes, run } = setup('interval: 1s, timeout: 500ms, fastinter: 250ms, rise: 2, fall: 3');
    await run(1990);
    table.reply = 'silent';
    await run(4000);
    const firstSilent = 2000;
    assert.deepEqual(table.sends.map((s) => s.t).filter((t) => t >= firstSilent).slice(0, 4), [2000, 2250, 2500, 2750]);
    assert.equal(changes.length, 1);
    assert.equal(changes[0].ev.to, 'down');
    assert.equal(changes[0].ev.consecutive.failures, 3);
    assert.equal(changes[0].ev.reason, 'no-response');
    assert.equal(changes[0].t - firstSilent, 2 * 250 + 500);
    assert.equal(b.counts.filtered, 3 + Math.floor((4000 - 3000) / 1000)); // then downinter (= interval)
  });

  test('an answer to a newer check settles the older unanswered one first, in send order', async () => {
    const { table, b, run } = setup('interval: 1s, timeout: 500ms, fastinter: 250ms, rise: 2, fall: 3');
    await run(990);
    table.reply = 'silent';
    await run(1240); // check at 1000 goes unanswered, suspect at 1250
    table.reply = 'open';
    await run(1400);
    // The 1250 check was answered at 1251: the 1000 one counts as failed first, then the answer.
    assert.deepEqual(b.history().map((h) => h.state), ['open', 'filtered', 'open']);
    assert.equal(b.state, 'up');
    assert.equal(b.inflight, 0);
  });

  test('a late reply to an overtaken check is not counted twice', async () => {
    const { table, b, run } = setup('interval: 1s, timeout: 500ms, fastinter: 250ms, rise: 2, fall: 3');
    await run(990);
    table.reply = 'silent';
    await run(1240);
    table.reply = 'open';
    const first = table.sends.find((s) => s.t === 1000)!.slot;
    table.answerAt(1300, first); // the 1000 check's reply, after the 1250 one settled it
    await run(1400);
    assert.equal(b.checks, 3);
  });

  test('a down backend is checked at downinter; a silent one is not made suspect', async () => {
    const { table, b, run } = setup('interval: 1s, timeout: 500ms, fastinter: 250ms, downinter: 2s, rise: 2, fall: 2, initial: down');
    table.reply = 'silent';
    await run(6990);
    assert.equal(b.state, 'down');
    assert.deepEqual(table.sends.map((s) => s.t), [0, 2000, 4000, 6000]);
  });

  test('checks overlap up to the depth: a timeout longer than fastinter never delays the next check', async () => {
    const { table, b, run } = setup('interval: 1s, timeout: 1s, fastinter: 300ms, rise: 1, fall: 10');
    table.reply = 'silent';
    await run(2990);
    assert.equal(b.depth, 4);
    assert.deepEqual(table.sends.map((s) => s.t), [0, 300, 600, 900, 1200, 1500, 1800, 2100, 2400, 2700]);
    assert.ok(b.inflight <= b.depth);
  });
});
