// The systemd notifications of serve: READY=1 at start, WATCHDOG=1 only while
// the scheduler is healthy, STOPPING=1 at the end, nothing outside systemd. The
// addon's datagram itself is tested in test/build/notify.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startWatchdog } from '../../src/daemon/watchdog';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('systemd watchdog', () => {
  test('outside systemd: nothing is sent', () => {
    const sent: string[] = [];
    const w = startWatchdog(() => true, { env: {}, notify: (_, s) => { sent.push(s); return 0; } });
    assert.equal(w.intervalMs, null);
    w.stop();
    assert.deepEqual(sent, []);
  });

  test('READY=1, pings at a third of WATCHDOG_USEC while healthy, none while not, STOPPING=1; variables removed', async () => {
    const sent: string[] = [];
    let healthy = true;
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '60000', WATCHDOG_PID: String(process.pid) };
    const w = startWatchdog(() => healthy, { env, notify: (p, s) => { assert.equal(p, '/run/x'); sent.push(s); return 0; } });
    assert.equal(w.intervalMs, 20);
    assert.deepEqual(env, {});
    await sleep(150);
    const healthyPings = sent.filter((s) => s === 'WATCHDOG=1').length;
    assert.ok(healthyPings >= 3, `${healthyPings} pings`);
    healthy = false;
    await sleep(30);
    const before = sent.length;
    await sleep(150);
    assert.equal(sent.slice(before).filter((s) => s === 'WATCHDOG=1').length, 0, 'no ping while unhealthy');
    w.stop();
    assert.equal(sent[0], 'READY=1');
    assert.equal(sent.at(-1), 'STOPPING=1');
    assert.ok(sent.some((s) => s.startsWith('STATUS=scheduler unhealthy')));
  });

  test("another process's WATCHDOG_PID: ready, but no pings", () => {
    const sent: string[] = [];
    const w = startWatchdog(() => true, { env: { NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '1' }, notify: (_, s) => { sent.push(s); return 0; } });
    assert.equal(w.intervalMs, null);
    w.stop();
    assert.deepEqual(sent, ['READY=1', 'STOPPING=1']);
  });

  test('a failing socket is reported once', () => {
    const warnings: string[] = [];
    const w = startWatchdog(() => true, { env: { NOTIFY_SOCKET: '/nonexistent' }, notify: () => 2, warn: (m) => warnings.push(m) });
    w.stop();
    assert.deepEqual(warnings, ['cannot notify systemd at /nonexistent (READY): errno 2']);
  });

});
