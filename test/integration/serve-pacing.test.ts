// How `halfopen serve`'s checks leave: a tick's checks are handed to the
// sender up to one tick before they are due and leave when each is due,
// spread over the tick (src/daemon/monitor.ts leadOf, native/addon/sender.cc
// sendList), not in one burst at the tick. Seen on the wire by a capture in
// the fleet: no millisecond carries more than part of a tick's SYNs;
// from serve's own histograms: checks leave within a few ms of their
// schedule, and a round trip starts when the SYN leaves, not when it was
// handed over.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import { ServeProcess } from '../helpers/serve';
import { captureSyns, parseSyn } from '../helpers/syn-capture';

const skip = netnsSkipReason();
const HTTP = 9188;
const BACKENDS = 2000, INTERVAL_MS = 500, TICK_MS = 50;

/** Share of a histogram's observations at or below `le` (its cumulative buckets in a /metrics text). */
function shareAtOrBelow(text: string, name: string, le: number): { share: number; count: number } {
  const bucket = (bound: string) => Number(new RegExp(`^${name}_bucket\\{le="${bound.replace('+', '\\+')}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  const count = bucket('+Inf');
  return { share: bucket(String(le)) / count, count };
}

describe('halfopen serve: checks leave when due, spread over the tick', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  let serve: ServeProcess;

  before(async () => {
    fleet = await Fleet.create({ tag: 'pacing', v4: '198.18.0.0/21', open: [80] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-pacing-'));
    const file = path.join(dir, 'serve.yaml');
    const backends = Array.from({ length: BACKENDS }, (_, i) => `  - { name: b${i}, host: 198.18.${i >> 8}.${i & 255}, port: 80 }`);
    fs.writeFileSync(file, `defaults: { interval: ${INTERVAL_MS}ms, timeout: 250ms, rise: 2, fall: 3, jitter: 0.1 }\nlisten: { http: "127.0.0.1:${HTTP}" }\nbackends:\n${backends.join('\n')}\n`);
    serve = new ServeProcess(fleet, file);
    await serve.ready();
  });
  after(async () => {
    await serve?.stop();
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('no millisecond carries a burst of a tick\'s SYNs; checks leave on time; RTTs are the SYNs\' own', async (t) => {
    await sleep(1500); // first checks spread over the interval, every backend up
    const before = serve.get(HTTP, '/metrics').body;
    const stop = await captureSyns(fleet, path.join(dir, 'syn.txt'), 30);
    await sleep(4000);
    const syns = (await stop()).map(parseSyn).filter((s) => s.port === 80);
    const after = serve.get(HTTP, '/metrics').body;

    // Most of what was due reached the fleet (a capture, not an exact count: the exact counts are serve.test's).
    const seconds = (syns[syns.length - 1].time - syns[0].time);
    const perSecond = syns.length / seconds;
    assert.ok(perSecond > 0.8 * BACKENDS * 1000 / INTERVAL_MS, `${syns.length} SYNs in ${seconds.toFixed(1)} s: ${perSecond.toFixed(0)}/s, ${BACKENDS * 1000 / INTERVAL_MS}/s due`);

    // Sent in one burst a tick, a 50 ms tick's 200 SYNs would sit in one or two
    // milliseconds; paced, they leave in steps of about 32 (Monitor.quantize).
    const perMs = new Map<number, number>();
    for (const s of syns) { const ms = Math.floor(s.time * 1000); perMs.set(ms, (perMs.get(ms) ?? 0) + 1); }
    const busiest = Math.max(...perMs.values());
    const perTick = perSecond * TICK_MS / 1000;
    assert.ok(busiest <= perTick / 2, `the busiest millisecond carried ${busiest} SYNs, a tick ${perTick.toFixed(0)}: burst, not paced`);

    // serve's own lateness: without look-ahead it spreads evenly over the tick (a fifth within 10 ms).
    const late = shareAtOrBelow(after, 'halfopen_check_lateness_seconds', 0.01);
    const lateBefore = shareAtOrBelow(before, 'halfopen_check_lateness_seconds', 0.01);
    const window = (late.share * late.count - lateBefore.share * lateBefore.count) / (late.count - lateBefore.count);
    assert.ok(window >= 0.8, `${(100 * window).toFixed(1)} % of checks left within 10 ms of their schedule`);

    t.diagnostic(`${syns.length} SYNs, ${perSecond.toFixed(0)}/s; busiest ms ${busiest} SYNs of ${perTick.toFixed(0)} a tick; ${(100 * window).toFixed(1)} % of checks within 10 ms of schedule`);
    // Round trips in a veth fleet are well under 10 ms: one counted from the hand-over would include the wait.
    const rtt = shareAtOrBelow(after, 'halfopen_probe_duration_seconds', 0.01);
    assert.ok(rtt.share >= 0.95, `${(100 * rtt.share).toFixed(1)} % of round trips within 10 ms`);
  });
});
