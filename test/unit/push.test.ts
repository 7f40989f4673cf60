// The push section's parser, the HAProxy command plan against a model of
// HAProxy's server state (fast-check: from any state, one round of commands
// converges and a second round sends nothing), nftlb's farm parsing and state
// mapping, and the driver's one-batch-per-tick contract.
//
// A failure prints fast-check's seed; rerun with HALFOPEN_FC_SEED=<seed> HALFOPEN_FC_PATH=<path>.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fc from 'fast-check';
import { parseConfig } from '../../src/daemon/config';
import { ServerRow, commands, observed, parseInfo, parseServersState, weightFor } from '../../src/daemon/push/haproxy';
import { nftlbState, nftlbWeight, parseFarm } from '../../src/daemon/push/nftlb';
import { PushDriver, withDiscovered } from '../../src/daemon/push/driver';
import type { BackendView, PushTarget } from '../../src/daemon/push/target';
import { newCounters, backoffMs } from '../../src/daemon/push/target';
import { warningLog } from '../../src/daemon/rate-limited-log';

const base = `backends:\n  - { name: web1, host: 198.18.0.1, port: 80, server: w1 }\n  - { name: web2, host: 198.18.0.2, port: 80, server: other/w2 }\n`;
const cfg = (push: string, backends = base) => parseConfig(`${backends}push:\n${push}`, 'serve.yaml');

const fcOptions = () => ({
  numRuns: Number(process.env.HALFOPEN_FC_RUNS ?? 300),
  seed: process.env.HALFOPEN_FC_SEED === undefined ? undefined : Number(process.env.HALFOPEN_FC_SEED),
  path: process.env.HALFOPEN_FC_PATH,
});
function check<T>(arb: fc.Arbitrary<T>, prop: (v: T) => void): void {
  const out = fc.check(fc.property(arb, prop), fcOptions());
  if (out.failed) assert.fail(`${fc.defaultReportMessage(out)}\nrerun: HALFOPEN_FC_SEED=${out.seed} HALFOPEN_FC_PATH=${out.counterexamplePath}`);
}

describe('push config', () => {
  test('HAProxy and nftlb targets with their defaults, and each backend\'s server', () => {
    const c = cfg(`  haproxy:\n    - { socket: /run/haproxy/admin.sock, backend: app }\n    - { socket: "127.0.0.1:9999", backend: app, reconcile: 5s }\n  nftlb:\n    - { url: "http://127.0.0.1:27", key_file: /etc/halfopen/nftlb.key, farm: app, discover: true }\n`);
    assert.deepEqual(c.push.haproxy[0], { socket: { path: '/run/haproxy/admin.sock' }, socketText: '/run/haproxy/admin.sock', backend: 'app', reconcile: 30_000, poll: 1000, timeout: 2000 });
    assert.deepEqual(c.push.haproxy[1].socket, { host: '127.0.0.1', port: 9999 });
    assert.equal(c.push.haproxy[1].reconcile, 5000);
    assert.deepEqual(c.push.nftlb[0], { url: 'http://127.0.0.1:27', keyFile: '/etc/halfopen/nftlb.key', farm: 'app', discover: true, reconcile: 30_000, poll: 2000, timeout: 2000 });
    assert.deepEqual(c.push.servers, { web1: 'w1', web2: 'other/w2' });
    assert.deepEqual(parseConfig(base, 'serve.yaml').push, { haproxy: [], nftlb: [], servers: { web1: 'w1', web2: 'other/w2' } });
  });

  test('discover: true allows a config without backends; the defaults are the discovered backends\' timings', () => {
    const c = parseConfig(`defaults: { interval: 1s, rise: 3 }\npush:\n  nftlb:\n    - { url: "http://127.0.0.1:27", key_file: /k, farm: app, discover: true }\n`, 'serve.yaml');
    assert.equal(c.backends.length, 0);
    assert.equal(c.template.interval, 1000);
    assert.equal(c.template.rise, 3);
    const list = withDiscovered([], [{ name: 'app/b1', host: '198.18.0.9', port: 80 }, { name: 'app/b1', host: '198.18.0.10', port: 80 }], c.template);
    assert.equal(list.length, 1, 'a name is checked once');
    assert.equal(list[0].cfg.name, 'app/b1');
    assert.throws(() => parseConfig(`push:\n  nftlb:\n    - { url: "http://127.0.0.1:27", key_file: /k, farm: app }\n`, 'f'), /backends: expected a non-empty list/);
  });

  test('every mistake is one error naming the field', () => {
    const cases: Array<[string, RegExp]> = [
      ['  haproxy:\n    - { socket: admin.sock, backend: app }\n', /push\.haproxy\[0\]\.socket: expected a unix socket path .* got "admin\.sock"/],
      ['  haproxy:\n    - { socket: /s }\n', /push\.haproxy\[0\]\.backend: expected a name/],
      ['  haproxy:\n    - { socket: /s, backend: app, reconcile: soon }\n', /push\.haproxy\[0\]\.reconcile: expected a duration/],
      ['  haproxy:\n    - { socket: /s, backend: app, backnd: x }\n', /push\.haproxy\[0\]\.backnd: expected one of the fields/],
      ['  haproxy:\n    - { socket: /s, backend: app }\n    - { socket: /s, backend: app }\n', /push: expected each balancer once/],
      ['  nftlb:\n    - { url: "https://x:27", key_file: /k, farm: app }\n', /push\.nftlb\[0\]\.url: expected http:\/\/HOST:PORT/],
      ['  nftlb:\n    - { url: "http://127.0.0.1:27", farm: app }\n', /push\.nftlb\[0\]\.key_file: expected the path/],
      ['  nftlb:\n    - { url: "http://127.0.0.1:27", key_file: /k, farm: app, discover: yes }\n', /push\.nftlb\[0\]\.discover: expected true or false/],
      ['  balancer: {}\n', /push\.balancer: expected one of the fields haproxy, nftlb, reconcile/],
    ];
    for (const [push, re] of cases) assert.throws(() => cfg(push), re, push);
    assert.throws(() => cfg('  haproxy: []\n', 'backends:\n  - { host: 198.18.0.1, port: 80, server: "a b" }\n'), /backends\[0\]\.server: expected a HAProxy server name, or BACKEND\/SERVER/);
  });
});

describe('HAProxy command plan', () => {
  const STATE = '1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n' +
    '2 be 1 nc 198.18.0.1 2 0 1 1 3 1 0 2 0 0 0 0 - 80 - 0 0 - - 0\n2 be 3 ag 198.18.0.3 0 9 100 100 3 1 0 2 0 22 0 0 - 80 - 0 0 - 127.0.0.1 9\n';

  test('show servers state and show info are read as measured on HAProxy 2.6', () => {
    const rows = parseServersState(STATE);
    assert.deepEqual(rows[1], { backend: 'be', server: 'ag', op: 0, admin: 9, uweight: 100, iweight: 100, check: 0, agent: 22 });
    assert.deepEqual(parseInfo('Name: HAProxy\nPid: 4242\nUptime: 0d\nUptime_sec: 17\n'), { pid: 4242, uptime: 17 });
    assert.equal(parseInfo('garbage'), null);
  });

  test('an agent-checked server gets `agent`, every other `health`; state before health before weight', () => {
    const v: BackendView = { name: 'x', address: '198.18.0.1', port: 80, state: 'down', admin: 'drain', weight: 40 };
    assert.deepEqual(commands('be/x', v, null, true), ['set server be/x state drain', 'set server be/x agent down', 'set server be/x weight 40%']);
    assert.deepEqual(commands('be/x', v, null, false)[1], 'set server be/x health down');
    assert.deepEqual(commands('be/x', v, { state: 'down', admin: 'drain', weight: 40 }, false), []);
    assert.deepEqual(commands('be/x', { ...v, weight: null }, { state: 'down', admin: 'drain', weight: 7 }, false), [], 'an unmanaged weight is left alone');
  });

  /** HAProxy's server state as the commands change it (the part reconcile reads). */
  function applyToModel(row: ServerRow, cmd: string): void {
    const m = /^set server \S+ (state|health|agent|weight) (\S+)$/.exec(cmd)!;
    if (m[1] === 'state') row.admin = m[2] === 'ready' ? row.admin & ~0x09 : m[2] === 'drain' ? (row.admin & ~0x01) | 0x08 : row.admin | 0x01;
    else if (m[1] === 'weight') row.uweight = weightFor(row.iweight, Number(m[2].slice(0, -1)));
    else row.op = m[2] === 'up' ? 2 : 0;
  }

  test('from any HAProxy state one round of commands converges, and a second sends nothing (fast-check)', () => {
    const rowArb = fc.record({
      op: fc.constantFrom(0, 1, 2, 3), admin: fc.integer({ min: 0, max: 0x7f }), iweight: fc.integer({ min: 0, max: 256 }),
      uweight: fc.integer({ min: 0, max: 256 }), agent: fc.constantFrom(0, 22),
    });
    const wantArb = fc.record({
      state: fc.constantFrom('up' as const, 'down' as const), admin: fc.constantFrom('ready' as const, 'drain' as const, 'maint' as const),
      weight: fc.option(fc.integer({ min: 0, max: 100 }), { nil: null }),
    });
    check(fc.tuple(rowArb, wantArb), ([r, w]) => {
      const row: ServerRow = { backend: 'be', server: 's', check: 0, ...r };
      const want: BackendView = { name: 's', address: '198.18.0.1', port: 80, ...w };
      for (const c of commands('be/s', want, observed(row, want), r.agent !== 0)) applyToModel(row, c);
      assert.deepEqual(commands('be/s', want, observed(row, want), r.agent !== 0), []);
    });
  });
});

describe('nftlb', () => {
  test('the farm\'s backends, matched by address and port (an empty port is the virtual port)', () => {
    const farm = { farms: [{ name: 'app', 'virtual-ports': '443', backends: [
      { name: 'b1', 'ip-addr': '198.18.0.1', port: '', weight: '5', state: 'up' },
      { name: 'b2', 'ip-addr': '2001:2::0001', port: '8443', state: 'off' },
      { name: 'broken', 'ip-addr': 'nope', port: '1' },
    ] }] };
    assert.deepEqual(parseFarm(farm, 'app'), [
      { name: 'b1', address: '198.18.0.1', port: 443, weight: 5, state: 'up' },
      { name: 'b2', address: '2001:2::1', port: 8443, weight: 1, state: 'off' },
    ]);
    assert.throws(() => parseFarm(farm, 'other'), /nftlb has no farm other/);
  });

  test('states and weights', () => {
    const v = (state: 'up' | 'down', admin: 'ready' | 'drain' | 'maint'): BackendView => ({ name: 'x', address: 'a', port: 1, state, admin, weight: null });
    assert.equal(nftlbState(v('up', 'ready')), 'up');
    assert.equal(nftlbState(v('down', 'ready')), 'down');
    assert.equal(nftlbState(v('up', 'drain')), 'down');
    assert.equal(nftlbState(v('down', 'maint')), 'off');
    assert.equal(nftlbWeight(5, 10), 1);
    assert.equal(nftlbWeight(10, 50), 5);
    assert.equal(nftlbWeight(1, 0), 1, 'nftlb has no weight 0');
  });
});

describe('push driver', () => {
  class FakeMonitor extends EventEmitter {
    readonly backends = new Map<string, any>();
    list() { return [...this.backends.values()]; }
    get(n: string) { return this.backends.get(n); }
  }
  const backend = (name: string, slowstart = 0) => ({
    cfg: { name, port: 80, slowstart, weight: undefined }, address: '198.18.0.1', reported: 'up', admin: 'ready',
    weightNow: () => 100, rampingUp: () => false,
  });

  test('2,000 changes in one tick are one update per target', async () => {
    const m = new FakeMonitor();
    for (let i = 0; i < 2000; i++) m.backends.set(`b${i}`, backend(`b${i}`));
    const batches: BackendView[][] = [];
    const target: PushTarget = {
      name: 'fake', counters: newCounters(), start() {}, update: (c) => { batches.push(c); }, reconcile: async () => {}, close: async () => {}, discoveredBackends: () => [],
    };
    const d = new PushDriver(m as any, { haproxy: [], nftlb: [], servers: { b1: 'srv1' } }, () => {}, () => {}, () => [target]);
    d.start();
    for (const b of m.backends.values()) { b.reported = 'down'; m.emit('change', { event: 'state', to: 'down' }, b); }
    m.emit('change', { event: 'check' }, m.get('b0'));
    await new Promise((r) => setImmediate(r));
    assert.equal(batches.length, 1);
    assert.equal(batches[0].length, 2000);
    assert.equal(batches[0][1].server, 'srv1');
    assert.ok(batches[0].every((v) => v.state === 'down' && v.weight === null));
    assert.match(d.metrics(), /halfopen_push_commands_total\{target="fake"\} 0/);
    await d.close();
  });

  test('backoff doubles to 30 s; warnings are rate-limited with a count', () => {
    assert.deepEqual([1, 2, 3, 7, 20].map(backoffMs), [500, 1000, 2000, 30_000, 30_000]);
    const out: string[] = [];
    const log = warningLog((m) => out.push(m), 1000);
    log.write('a', 0); log.write('b', 10); log.write('c', 20); log.write('d', 1500);
    assert.deepEqual(out, ['a', 'd (2 similar warnings not shown)']);
  });
});
