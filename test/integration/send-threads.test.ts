// The health checks' sender (Engine.sendSlots on the addon's SendThreads,
// native/addon/sender.cc): the real engine in a fleet's prober namespace,
// from a child process, so what is checked includes the process's life:
// a list in flight keeps it alive, idle threads do not, and close() sends
// what it was given before the threads stop.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import * as C from '../../src/contract.generated';

const skip = netnsSkipReason();
const ENGINE = path.resolve(__dirname, '../../src/engine/engine.js');
const ADDRESS = path.resolve(__dirname, '../../src/targets/address.js');

/** Runs `body` (an async function's body, given e = the engine) in node in the prober namespace; its stdout lines as JSON. */
function inProber(fleet: Fleet, body: string, opts: string, timeoutMs = 20_000): { status: number | null; out: unknown[]; stderr: string; ms: number } {
  const script = `
const { Engine } = require(${JSON.stringify(ENGINE)});
const { mustParseAddress } = require(${JSON.stringify(ADDRESS)});
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const a = (s) => mustParseAddress(s);
const e = Engine.open([a('198.18.0.1')], 4096, ${opts});
(async () => { ${body} })().catch((err) => { out({ error: String(err && err.message || err) }); process.exitCode = 3; });
`;
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-sendthreads-')), 'run.js');
  fs.writeFileSync(file, script);
  const t0 = Date.now();
  const r = spawnSync('ip', ['netns', 'exec', fleet.prober, process.execPath, file], { encoding: 'utf8', timeout: timeoutMs });
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  return { status: r.status, out: r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)), stderr: r.stderr, ms: Date.now() - t0 };
}

// Slots 0..n-1 on 198.18.0.(1+k): port 80 open, port 81 closed (RST), 198.18.1.x dropped.
const PROGRAM = `
const slots = [];
for (let k = 0; k < 40; k++) { e.setSlot(k, a('198.18.0.' + (1 + k)), 80, 61000 + k); slots.push(k); }
for (let k = 40; k < 80; k++) { e.setSlot(k, a('198.18.0.' + (k - 39)), 81, 61000 + k); slots.push(k); }
for (let k = 80; k < 100; k++) { e.setSlot(k, a('198.18.1.' + (k - 79)), 80, 61000 + k); slots.push(k); }
const verdicts = async (n, ms) => { const t = Date.now(); for (;;) { let got = 0; for (let k = 0; k < n; k++) if (e.answered(k)) got++; if (got >= 80 || Date.now() - t > ms) return; await new Promise((r) => setTimeout(r, 20)); } };
`;

describe('the engine\'s native sender threads', { skip }, () => {
  let fleet: Fleet;
  before(async () => { fleet = await Fleet.create({ tag: 'sendthr', v4: '198.18.0.0/23', open: [80], drop: ['198.18.1.0/24'] }); });
  after(() => fleet?.remove());

  test('lists with and without waits: every SYN leaves, verdicts land, late per ms of wait; two threads', () => {
    const r = inProber(fleet, `${PROGRAM}
      const from = performance.timeOrigin + performance.now();
      const waits = Uint16Array.from(slots, (k) => k % 3 * 10); // 0, 10 and 20 ms after from
      const t0 = performance.now();
      const [r1, r2] = await Promise.all([e.sendSlots(Uint32Array.from(slots.slice(0, 50)), waits.slice(0, 50), from), e.sendSlots(Uint32Array.from(slots.slice(50)))]);
      const took = performance.now() - t0;
      await verdicts(100, 3000);
      const states = slots.map((k) => e.verdict(k)?.state ?? -1);
      out({ r1: { ...r1, late: Array.from(r1.late) }, r2, took, states });
      await e.close();
      out({ closed: true });`, '{ checksOnly: true, senders: 2, retries: 0 }');
    assert.equal(r.status, 0, r.stderr + JSON.stringify(r.out));
    const [res, closed] = r.out as [{ r1: { sent: number; failed: number; late: number[] }; r2: { sent: number; late?: unknown }; took: number; states: number[] }, { closed: boolean }];
    assert.equal(res.r1.sent, 50);
    assert.equal(res.r1.failed, 0);
    assert.equal(res.r1.late.length, 21, 'late has one entry per ms up to the longest wait');
    assert.ok(res.r1.late.every((ms) => ms >= 0 && ms < 50), `late ${res.r1.late}`);
    assert.ok(res.took >= 19, `the waited SYNs left after their waits (${res.took} ms)`);
    assert.equal(res.r2.sent, 50);
    assert.equal(res.r2.late, undefined);
    for (let k = 0; k < 40; k++) assert.equal(res.states[k], C.HO_PROBE_STATE_OPEN, `slot ${k}`);
    for (let k = 40; k < 80; k++) assert.equal(res.states[k], C.HO_PROBE_STATE_CLOSED, `slot ${k}`);
    for (let k = 80; k < 100; k++) assert.equal(res.states[k], -1, `slot ${k} (dropped) has no verdict`);
    assert.deepEqual(closed, { closed: true });
  });

  test('close() sends every list already handed over, then stops; a list after close is refused', () => {
    const r = inProber(fleet, `${PROGRAM}
      const results = [];
      const lists = [];
      // Eight lists of ten, each with waits up to 30 ms: close() comes while most are queued.
      for (let j = 0; j < 8; j++) lists.push(e.sendSlots(Uint32Array.from(slots.slice(j * 10, j * 10 + 10)), new Uint16Array(10).fill(30)).then((x) => results.push(x.sent)));
      const closing = e.close();
      await closing;
      await Promise.all(lists);
      out({ results });
      try { await e.sendSlots(Uint32Array.of(0)); out({ after: 'sent' }); } catch (err) { out({ after: err.message }); }`, '{ checksOnly: true, senders: 1, retries: 0 }');
    assert.equal(r.status, 0, r.stderr + JSON.stringify(r.out));
    assert.deepEqual(r.out, [{ results: [10, 10, 10, 10, 10, 10, 10, 10] }, { after: 'engine is closed' }]);
  });

  test('a list in flight keeps the process alive until its result; idle threads do not', () => {
    // No close(), no timers: the only thing pending is the list (its SYNs wait 300 ms).
    const r = inProber(fleet, `${PROGRAM}
      e.sendSlots(Uint32Array.of(0, 1, 2), Uint16Array.of(300, 300, 300)).then((x) => out({ sent: x.sent }));`, '{ checksOnly: true, senders: 1, retries: 0 }');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.out, [{ sent: 3 }]);
    assert.ok(r.ms < 10_000, `the process exited once idle (${r.ms} ms)`);
  });

  test('new send groups replace the threads; the old ones finish their lists', () => {
    // A slot with a mark of its own is a new group: the next list goes to new threads.
    const r = inProber(fleet, `${PROGRAM}
      const p1 = e.sendSlots(Uint32Array.from(slots.slice(0, 40)), new Uint16Array(40).fill(50));
      e.setSlot(40, a('198.18.0.1'), 81, 61040, { mark: 7 });
      const p2 = e.sendSlots(Uint32Array.of(40));
      const [r1, r2] = await Promise.all([p1, p2]);
      await verdicts(41, 3000);
      out({ r1: r1.sent, r2: r2.sent, s40: e.verdict(40)?.state ?? -1, s0: e.verdict(0)?.state ?? -1 });
      await e.close();`, '{ checksOnly: true, senders: 1, retries: 0 }');
    assert.equal(r.status, 0, r.stderr + JSON.stringify(r.out));
    assert.deepEqual(r.out, [{ r1: 40, r2: 1, s40: C.HO_PROBE_STATE_CLOSED, s0: C.HO_PROBE_STATE_OPEN }]);
  });

  test('the verdict ring holds a verdict for every slot of the table: none is lost while nobody reads it', () => {
    // 4,064 slots (254 addresses x 16 ports: 80 open, the others closed) in a
    // 4,096-slot table, whose ring is then 64 KB: 4,096 records. Every slot
    // answers while the ring is not read for 2 s.
    const r = inProber(fleet, `
      const n = 254 * 16, slots = new Uint32Array(n);
      for (let k = 0; k < n; k++) { e.setSlot(k, a('198.18.0.' + (1 + (k >> 4))), 80 + (k & 15), 61000 + (k % 1000)); slots[k] = k; }
      e.pollSlots();
      const sent = await e.sendSlots(slots);
      await new Promise((r) => setTimeout(r, 2000));
      let answered = 0;
      for (let k = 0; k < n; k++) if (e.answered(k)) answered++;
      const landed = e.pollSlots();
      out({ sent: sent.sent, answered, landed: new Set(landed).size, full: e.counters().ringbuf_full });
      await e.close();`, '{ checksOnly: true, senders: 1, retries: 0, capacity: 4096 }');
    assert.equal(r.status, 0, r.stderr + JSON.stringify(r.out));
    assert.deepEqual(r.out, [{ sent: 4064, answered: 4064, landed: 4064, full: 0 }]);
  });

  test('a checks-only engine runs no sweep', () => {
    const r = inProber(fleet, `try { await e.run({ size: 0 }, () => {}); out({ ran: true }); } catch (err) { out({ refused: err.message }); } await e.close();`, '{ checksOnly: true, senders: 1 }');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.out, [{ refused: 'this engine sends health checks only' }]);
  });
});
