// serve pushing its verdicts to a real HAProxy 2.6 through the Runtime API:
// 200 servers in three shapes (no check, `check inter 1h`, agent-check), every
// verdict change of the fleet in HAProxy's `show stat` within the rise/fall
// bound; drain/maint/weight/slow start; restart, master-worker reload and the
// socket going away, each reconciled; a wrong socket path is one line; a
// client through HAProxy's frontend reaches only up servers.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import { ServeProcess, waitFor } from '../helpers/serve';
import { HaproxyProcess } from '../helpers/haproxy';

const HTTP = 9380, AGENT = 9381, FRONTEND = 9382, HTTP2 = 9383, TCP_SOCKET = 9384;
const N = 200;
const INTERVAL = 300, TIMEOUT = 200, FASTINTER = 100, RISE = 2, FALL = 2, RECONCILE = 3000;
/**
 * serve's detection bound (src/daemon/monitor.ts): the first failing check
 * within one interval, fall - 1 more at fastinter, the last waits out its
 * timeout, two ticks; the push then goes out with that tick. +100 ms margin.
 */
const BOUND = INTERVAL + (FALL - 1) * FASTINTER + TIMEOUT + 2 * 30 + 100;
/** Coming back: the first success within one (down)interval, rise - 1 more at fastinter. */
const UP_BOUND = INTERVAL + (RISE - 1) * FASTINTER + 2 * 30 + 100;
const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
const skip = netnsSkipReason() || (!has('haproxy') && 'haproxy not installed (scripts/setup.sh installs it)');

const ip = (i: number) => `198.18.0.${i + 1}`;
const shape = (i: number) => (i % 3 === 0 ? 'none' : i % 3 === 1 ? 'check' : 'agent');

describe('serve pushes to HAProxy through the Runtime API', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  let serve: ServeProcess;
  let hap: HaproxyProcess;
  const token = 'push-test-token-0123456789';

  before(async () => {
    fleet = await Fleet.create({ tag: 'pushha', v4: '198.18.0.0/24', open: [80] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-push-haproxy-'));
    fs.writeFileSync(path.join(dir, 'token'), token, { mode: 0o600 });
    const server = (i: number) => {
      const s = shape(i);
      const extra = s === 'check' ? ' check inter 1h' : s === 'agent' ? ` agent-check agent-addr 127.0.0.1 agent-port ${AGENT} agent-send "s${i}\\n" agent-inter 10s` : '';
      return `  server s${i} ${ip(i)}:80 weight 100${extra}\n`;
    };
    fs.writeFileSync(path.join(dir, 'haproxy.cfg'), `global
  stats socket ${dir}/haproxy.sock mode 600 level admin
  stats socket ipv4@127.0.0.1:${TCP_SOCKET} level admin
  maxconn 2000
defaults
  mode tcp
  timeout connect 1s
  timeout client 5s
  timeout server 5s
backend be
  balance roundrobin
${Array.from({ length: N }, (_, i) => server(i)).join('')}  server stray 198.18.0.251:80 weight 100
backend be2
  server t0 ${ip(240)}:80
  server t1 ${ip(241)}:81
frontend fe
  bind 127.0.0.1:${FRONTEND}
  default_backend be
`);
    hap = new HaproxyProcess(fleet.prober, path.join(dir, 'haproxy.cfg'), path.join(dir, 'haproxy.sock'), true);
    await hap.start();
    const backends = Array.from({ length: N }, (_, i) =>
      `  - { name: s${i}, host: ${ip(i)}, port: 80${i === 5 ? ', weight: 50' : ''}${i === 6 ? ', slowstart: 2s' : ''} }\n`).join('') +
      `  - { name: ghost, host: ${ip(230)}, port: 80, server: be/ghost }\n`;
    fs.writeFileSync(path.join(dir, 'serve.yaml'), `
defaults: { interval: ${INTERVAL}ms, timeout: ${TIMEOUT}ms, fastinter: ${FASTINTER}ms, rise: ${RISE}, fall: ${FALL}, jitter: 0 }
listen: { http: "127.0.0.1:${HTTP}", agent: "127.0.0.1:${AGENT}" }
admin: { token_file: ${dir}/token }
push:
  reconcile: ${RECONCILE}ms
  haproxy:
    - socket: ${dir}/haproxy.sock
      backend: be
backends:
${backends}`);
    serve = new ServeProcess(fleet, path.join(dir, 'serve.yaml'));
    await serve.ready();
  });

  after(async () => {
    await serve?.stop();
    await hap?.stop();
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const isUp = (st: string | undefined) => !!st && /^UP|^no check/.test(st);
  const isDown = (st: string | undefined) => !!st && /^DOWN/.test(st);

  /** Polls show stat until every named server matches; returns ms taken (or throws with what is off). */
  async function until(what: string, ms: number, ok: (stat: Map<string, { status: string; weight: number }>) => string | null): Promise<number> {
    const t0 = Date.now();
    let last: string | null = 'never read';
    while (Date.now() - t0 < ms) {
      try { last = ok(await hap.stat('be')); } catch (e) { last = String(e); }
      if (last === null) return Date.now() - t0;
      await new Promise((r) => setTimeout(r, 15));
    }
    throw new Error(`${what}: not within ${ms} ms: ${last}`);
  }
  const each = (names: number[], pred: (s: string | undefined) => boolean) => (stat: Map<string, { status: string; weight: number }>) => {
    const bad = names.find((i) => !pred(stat.get(`s${i}`)?.status));
    return bad === undefined ? null : `s${bad} is ${stat.get(`s${bad}`)?.status}`;
  };
  const all = Array.from({ length: N }, (_, i) => i);

  function admin(name: string, state: string): number {
    const script = `fetch('http://127.0.0.1:${HTTP}/backends/${name}/admin',{method:'PUT',headers:{authorization:'Bearer ${token}'},body:'${state}'}).then(r=>process.stdout.write(String(r.status)))`;
    return Number(fleet.exec('prober', process.execPath, ['-e', script]));
  }

  test('at start every server is up in HAProxy, in each of the three shapes', async () => {
    await until('all up', 10_000, each(all, isUp));
    const stat = await hap.stat('be');
    assert.equal(stat.get('s0')!.status, 'no check');
    assert.match(stat.get('s1')!.status, /^UP/);
    assert.match(stat.get('s2')!.status, /^(UP|no check)/);
  });

  test('a stopped listener goes DOWN within the fall bound and UP within the rise bound, per shape', async () => {
    const victims = [30, 31, 32]; // none, check, agent
    for (const v of victims) fleet.block(`pushha_s${v}`, ip(v), 80, 'reset');
    let t: number;
    try {
      t = await until('stopped listeners down', BOUND + 2000, each(victims, isDown));
      assert.ok(t <= BOUND, `down in HAProxy after ${t} ms, bound ${BOUND}`);
      const stat = await hap.stat('be');
      assert.equal(stat.get('s32')!.status, 'DOWN (agent)', 'the agent shape is driven by `set server … agent down`');
      assert.ok(isUp(stat.get('s33')!.status), 'the neighbours stay up');
    } finally {
      for (const v of victims) fleet.unblock(`pushha_s${v}`);
    }
    t = await until('listeners back up', UP_BOUND + 2000, each(victims, isUp));
    assert.ok(t <= UP_BOUND, `up in HAProxy after ${t} ms, bound ${UP_BOUND}`);
  });

  test('a range dropped by nftables goes DOWN, 50 servers in one tick\'s batch, and comes back', async () => {
    const range = Array.from({ length: 50 }, (_, k) => 100 + k);
    execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', '-f', '-'], {
      input: `table inet pushha_range {\n chain input {\n  type filter hook input priority -10;\n  ip daddr ${ip(100)}-${ip(149)} tcp dport 80 drop\n }\n}\n`,
    });
    let t: number;
    try {
      t = await until('dropped range down', BOUND + 2000, each(range, isDown));
      assert.ok(t <= BOUND, `range down in HAProxy after ${t} ms, bound ${BOUND}`);
      await until('the rest up', 1000, each(all.filter((i) => i < 100 || i >= 150), isUp));
    } finally {
      fleet.unblock('pushha_range');
    }
    t = await until('range back', UP_BOUND + 2000, each(range, isUp));
    assert.ok(t <= UP_BOUND, `range up again after ${t} ms, bound ${UP_BOUND}`);
  });

  test('drain, maint and ready reach HAProxy; weight and slow start set its weight', async () => {
    for (const i of [40, 41, 42]) assert.equal(admin(`s${i}`, 'drain'), 200);
    await until('drain', 1500, each([40, 41, 42], (s) => /^DRAIN/.test(s ?? '')));
    for (const i of [40, 41, 42]) assert.equal(admin(`s${i}`, 'maint'), 200);
    await until('maint', 1500, each([40, 41, 42], (s) => /^MAINT/.test(s ?? '')));
    for (const i of [40, 41, 42]) assert.equal(admin(`s${i}`, 'ready'), 200);
    await until('ready', 1500 + UP_BOUND, each([40, 41, 42], isUp));
    // weight: 50 → 50 % of HAProxy's weight 100.
    assert.equal((await hap.stat('be')).get('s5')!.weight, 50);
    // Slow start: down, then up ramps HAProxy's weight from 10 % towards 100 over 2 s.
    fleet.block('pushha_s6', ip(6), 80, 'reset');
    try { await until('s6 down', BOUND + 2000, each([6], isDown)); } finally { fleet.unblock('pushha_s6'); }
    await until('s6 up', UP_BOUND + 2000, each([6], isUp));
    const early = (await hap.stat('be')).get('s6')!.weight;
    assert.ok(early < 60, `slow start: weight ${early} just after coming up`);
    await until('s6 full weight', 4000, (st) => (st.get('s6')!.weight === 100 ? null : `weight ${st.get('s6')!.weight}`));
  });

  test('a client through HAProxy\'s frontend reaches only up servers', async () => {
    assert.equal(admin('s50', 'maint'), 200);
    fleet.block('pushha_s51', ip(51), 80, 'drop');
    try {
      await until('s50 maint, s51 down', BOUND + 2000, (st) => (/^MAINT/.test(st.get('s50')!.status) && isDown(st.get('s51')!.status) ? null : `${st.get('s50')!.status} ${st.get('s51')!.status}`));
      const before = fleet.acceptedConnections().length;
      const script = `const net=require('net');let ok=0,bad=0,n=0;const go=()=>{if(n++>=${2 * N}){process.stdout.write(ok+' '+bad);return;}const s=net.connect(${FRONTEND},'127.0.0.1');s.setTimeout(2000);s.on('connect',()=>{ok++;s.end();go();});s.on('error',()=>{bad++;go();});s.on('timeout',()=>{bad++;s.destroy();go();});};go();`;
      const [ok, bad] = fleet.exec('prober', process.execPath, ['-e', script]).split(' ').map(Number);
      assert.equal(bad, 0);
      assert.equal(ok, 2 * N);
      await waitFor(() => fleet.acceptedConnections().length - before >= 2 * N - 10, 3000);
      const reached = new Set(fleet.acceptedConnections().slice(before).map((l) => l.split(' ')[2].replace(/^::ffff:/, '')));
      assert.ok(reached.size > N / 2, `reached ${reached.size} servers`);
      assert.ok(!reached.has(ip(50)), 'the server in maintenance got no connection');
      assert.ok(!reached.has(ip(51)), 'the silent server got no connection');
    } finally {
      fleet.unblock('pushha_s51');
      admin('s50', 'ready');
    }
    await until('s50, s51 back', 2000 + UP_BOUND, each([50, 51], isUp));
  });

  test('an HAProxy restart, and the socket gone meanwhile, are reconciled within reconcile + 1 s', async () => {
    await hap.stop();
    assert.ok(!fs.existsSync(path.join(dir, 'haproxy.sock')) || true);
    fleet.block('pushha_s60', ip(60), 80, 'reset');
    assert.equal(admin('s61', 'maint'), 200);
    try {
      // While HAProxy is away serve keeps checking: s60 goes down in serve.
      assert.ok(await waitFor(() => serve.json(HTTP, '/backends/s60').state === 'down', BOUND + 2000));
      await new Promise((r) => setTimeout(r, 1500));
      await hap.start();
      const t = await until('reconciled after restart', RECONCILE + 1000 + 2000, (st) =>
        (isDown(st.get('s60')!.status) && /^MAINT/.test(st.get('s61')!.status) && isUp(st.get('s62')!.status) ? null : `${st.get('s60')!.status} ${st.get('s61')!.status}`));
      assert.ok(t <= RECONCILE + 1000, `reconciled ${t} ms after the restart`);
      assert.equal((await hap.stat('be')).get('s5')!.weight, 50, 'weight restored too');
      const warnings = serve.stderr.split('\n').filter((l) => /push haproxy:.*retrying/.test(l));
      assert.ok(warnings.length >= 1 && warnings.length <= 2, `rate-limited warnings while away:\n${warnings.join('\n')}`);
    } finally {
      fleet.unblock('pushha_s60');
      admin('s61', 'ready');
    }
    await until('all up again', 5000, each(all, isUp));
  });

  test('a master-worker reload (kill -USR2) is reconciled within reconcile + 1 s', async () => {
    fleet.block('pushha_s70', ip(70), 80, 'reset');
    try {
      await until('s70 down', BOUND + 2000, each([70], isDown));
      const pid = (await hap.info())!.pid;
      hap.signal('SIGUSR2');
      const t0 = Date.now();
      // The new worker starts from the config (s70 up); serve notices the new pid and corrects it.
      assert.ok(await waitFor(() => { void hap.info().then((i) => { if (i) newPid = i.pid; }); return newPid !== 0 && newPid !== pid; }, 10_000, 50), 'a new worker');
      await until('s70 down after reload', RECONCILE + 1000, each([70], isDown));
      assert.ok(Date.now() - t0 <= RECONCILE + 1000 + 200, `reconciled ${Date.now() - t0} ms after SIGUSR2`);
      // Seen either as a new pid in `show info`, or (when a poll fell between the old worker and the new) as the socket refusing and coming back.
      assert.match(serve.stderr, /restarted or reloaded \(pid \d+ → \d+\)|connected again/);
    } finally {
      fleet.unblock('pushha_s70');
    }
    await until('s70 up', UP_BOUND + 2000, each([70], isUp));
  });
  let newPid = 0;

  test('a server missing from HAProxy, and one serve does not check, are reported once each', () => {
    const missing = serve.stderr.split('\n').filter((l) => /not in HAProxy/.test(l));
    const extra = serve.stderr.split('\n').filter((l) => /not checked by serve/.test(l));
    assert.equal(missing.length, 1, serve.stderr);
    assert.match(missing[0], /1 servers named in the config are not in HAProxy: be\/ghost$/);
    assert.equal(extra.length, 1, serve.stderr);
    assert.match(extra[0], /1 HAProxy servers are not checked by serve \(left alone\): be\/stray$/);
    assert.ok(!/No such server/.test(serve.stderr), 'nothing is sent to the missing server');
  });

  test('/metrics carries the push counters and passes promtool', { skip: !has('promtool') && 'promtool not installed (package prometheus)' }, () => {
    const text = serve.get(HTTP, '/metrics').body;
    const target = `target="haproxy:${dir}/haproxy.sock"`;
    assert.match(text, new RegExp(`halfopen_push_commands_total\\{${target.replace(/[/.]/g, '\\$&')}\\} [1-9]\\d*`));
    assert.match(text, /halfopen_push_failures_total\{[^}]*\} [1-9]/, 'the restart counted failures');
    assert.match(text, /halfopen_push_drift_corrected_total\{[^}]*\} [1-9]/, 'the restart left drift to correct');
    assert.match(text, /halfopen_push_last_reconcile_timestamp_seconds\{[^}]*\} 1\d{9}/);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  test('SIGHUP with a new weight: the reload reconciles, HAProxy takes the new weight', async () => {
    const file = path.join(dir, 'serve.yaml');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('name: s5, host: 198.18.0.6, port: 80, weight: 50', 'name: s5, host: 198.18.0.6, port: 80, weight: 25'));
    serve.signal('SIGHUP');
    assert.ok(await waitFor(() => /reloaded .*201 backends/.test(serve.stderr), 5000), serve.stderr);
    await until('weight 25', 2000, (st) => (st.get('s5')!.weight === 25 ? null : `weight ${st.get('s5')!.weight}`));
  });

  test('a wrong socket path is one warning line, and checking goes on; a TCP stats socket works', async () => {
    fs.writeFileSync(path.join(dir, 'wrong.yaml'), `
defaults: { interval: ${INTERVAL}ms, timeout: ${TIMEOUT}ms, rise: 1, fall: 1 }
listen: { http: "127.0.0.1:${HTTP2}" }
probe: { source_ports: 63000-63099 }
push:
  haproxy:
    - { socket: ${dir}/no-such.sock, backend: be }
    - { socket: "127.0.0.1:${TCP_SOCKET}", backend: be2 }
backends:
  - { name: t0, host: ${ip(240)}, port: 80 }
  - { name: t1, host: ${ip(241)}, port: 81 }
`);
    const other = new ServeProcess(fleet, path.join(dir, 'wrong.yaml'));
    try {
      await other.ready();
      await new Promise((r) => setTimeout(r, 3000));
      const lines = other.stderr.split('\n').filter((l) => l.includes('no-such.sock'));
      assert.equal(lines.length, 1, other.stderr);
      assert.match(lines[0], /push haproxy:.*no-such\.sock: ENOENT; retrying in .* checking goes on/);
      assert.equal(other.json(HTTP2, '/backends/t0').state, 'up');
      assert.equal(other.json(HTTP2, '/backends/t1').state, 'down');
      assert.ok(other.json(HTTP2, '/backends/t0').counters.checks >= 5);
      // The other target, over TCP, got t1's verdict (HAProxy has no check on it: only serve can have said so).
      const be2 = await hap.stat('be2');
      assert.match(be2.get('t1')!.status, /^DOWN/);
      assert.equal(be2.get('t0')!.status, 'no check');
    } finally {
      await other.stop();
    }
  });
});
