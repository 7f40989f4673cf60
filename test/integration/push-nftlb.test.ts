// serve pushing its verdicts to a real nftlb (Debian nftlb 1.0.7), started by
// the test in the fleet's prober namespace with its own key (nftlb rewrites
// the nftables ruleset of its namespace: never the host's). A farm of 200
// backends: dropped backends go down in GET /farms/NAME and out of the
// nftables rules, and a client of the farm's virtual address reaches only up
// backends; an nftlb restart is reconciled; a wrong key is one line, retried,
// checking goes on; `discover: true` checks exactly the farm's backends and
// follows one added and removed through the API.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import { ServeProcess, waitFor } from '../helpers/serve';
import { stopChild } from '../../src/fleet/stop-child';

const HTTP = 9390, API = 27027; // not nftlb's default 5555, the agent port of serve's examples
const N = 200, VIP = '198.18.1.1';
const INTERVAL = 300, TIMEOUT = 200, FASTINTER = 100, FALL = 2, POLL = 1000;
const BOUND = INTERVAL + (FALL - 1) * FASTINTER + TIMEOUT + 2 * 30 + 100;
const KEY = 'nftlb-test-key-4242', TOKEN = 'push-nftlb-admin-token-0123';
const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
const skip = netnsSkipReason() || (!has('nftlb') && 'nftlb not installed (scripts/setup.sh installs it)');
const ip = (i: number) => `198.18.0.${i + 1}`;

describe('serve pushes to nftlb', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  let nftlb: ChildProcess | null = null;
  let serve: ServeProcess | null = null;
  /** The farm's clients live in a namespace of their own, behind the balancer (nftlb's rules hook prerouting). */
  const clientNs = `push${process.pid}c`;
  let clientMade = false;

  const farm = (n: number) => ({
    farms: [{
      name: 'app', family: 'ipv4', 'virtual-addr': VIP, 'virtual-ports': '80', mode: 'snat', protocol: 'tcp', scheduler: 'rr',
      state: 'up',
      backends: Array.from({ length: n }, (_, i) => ({ name: `bck${i}`, 'ip-addr': ip(i), port: '80', weight: i === 30 ? '10' : '1', state: 'up' })),
    }],
  });

  async function startNftlb(): Promise<void> {
    // Started with the farm as its config, like ZEVENET: a restart comes back with every backend "up".
    nftlb = spawn('ip', ['netns', 'exec', fleet.prober, 'nftlb', '-k', KEY, '-H', '127.0.0.1', '-P', String(API), '-l', '3', '-L', '2', '-c', path.join(dir, 'farm.json')], { stdio: ['ignore', 'ignore', 'pipe'] });
    nftlb.stderr!.resume();
    assert.ok(await waitFor(() => api('GET', '/farms/app').status === 200, 10_000, 100), 'nftlb answers');
  }
  async function stopNftlb(): Promise<void> {
    await stopChild(nftlb);
    nftlb = null;
  }

  /** One request to nftlb's API inside the prober namespace. */
  function api(method: string, p: string, body?: unknown, key = KEY): { status: number; json: any } {
    const script = `fetch('http://127.0.0.1:${API}${p}',{method:'${method}',headers:{Key:'${key}'},body:${body ? JSON.stringify(JSON.stringify(body)) : 'undefined'}})` +
      `.then(async r=>process.stdout.write(r.status+'\\n'+await r.text())).catch(e=>process.stdout.write('0\\n'+e))`;
    const out = fleet.exec('prober', process.execPath, ['-e', script]);
    const nl = out.indexOf('\n');
    let json: any = null;
    try { json = JSON.parse(out.slice(nl + 1)); } catch { /* not JSON */ }
    return { status: Number(out.slice(0, nl)), json };
  }
  const states = (): Map<string, string> => new Map((api('GET', '/farms/app').json?.farms?.[0]?.backends ?? []).map((b: any) => [b.name, b.state]));
  /**
   * Backends new connections are scheduled to: the marks in the farm's numgen
   * map (chain filter-app), through the mark → address map of chain nat-app
   * (which also keeps "off" backends, for their established connections).
   */
  const inRules = (): Set<string> => {
    const nat = fleet.exec('prober', 'nft', ['list', 'chain', 'ip', 'nftlb', 'nat-app']);
    const byMark = new Map([...nat.matchAll(/(0x[0-9a-f]+) : (198\.18\.0\.\d+) \. 80/g)].map((m) => [Number(m[1]), m[2]]));
    const filter = fleet.exec('prober', 'nft', ['list', 'chain', 'ip', 'nftlb', 'filter-app']);
    const marks = new Set([...filter.replace(/^[^{]*\{/s, '').matchAll(/: (0x[0-9a-f]+)/g)].map((m) => Number(m[1])));
    return new Set([...marks].map((m) => byMark.get(m)).filter((a): a is string => !!a));
  };
  async function until(what: string, ms: number, cond: () => string | null): Promise<number> {
    const t0 = Date.now();
    let last: string | null = 'never';
    while (Date.now() - t0 < ms) {
      last = cond();
      if (last === null) return Date.now() - t0;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`${what}: not within ${ms} ms: ${last}`);
  }
  const stateIs = (names: number[], want: string) => () => {
    const s = states();
    const bad = names.find((i) => s.get(`bck${i}`) !== want);
    return bad === undefined ? null : `bck${bad} is ${s.get(`bck${bad}`)}`;
  };

  function writeServe(file: string, extra: string, backends: boolean): void {
    fs.writeFileSync(path.join(dir, file), `
defaults: { interval: ${INTERVAL}ms, timeout: ${TIMEOUT}ms, fastinter: ${FASTINTER}ms, rise: 2, fall: ${FALL}, jitter: 0 }
listen: { http: "127.0.0.1:${HTTP}" }
admin: { token_file: ${dir}/token }
probe: { interface: ${fleet.proberIf} }
push:
  nftlb:
    - { url: "http://127.0.0.1:${API}", key_file: ${dir}/key, farm: app, poll: ${POLL}ms${extra} }
${backends ? `backends:\n${Array.from({ length: N }, (_, i) => `  - { name: web${i}, host: ${ip(i)}, port: 80${i === 30 ? ', weight: 50' : ''} }\n`).join('')}` : ''}`);
  }

  before(async () => {
    fleet = await Fleet.create({ tag: 'pushnl', v4: '198.18.0.0/24', open: [80] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-push-nftlb-'));
    fs.writeFileSync(path.join(dir, 'key'), `${KEY}\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'token'), TOKEN, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'farm.json'), JSON.stringify(farm(N)));
    await startNftlb();
    const sh = (ns: string, ...a: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...a]);
    execFileSync('ip', ['netns', 'add', clientNs]);
    clientMade = true;
    execFileSync('ip', ['link', 'add', 'pushcl0', 'netns', clientNs, 'type', 'veth', 'peer', 'name', 'pushcl1', 'netns', fleet.prober]);
    sh(clientNs, 'ip', 'link', 'set', 'lo', 'up');
    sh(clientNs, 'ip', 'addr', 'add', '198.18.2.1/30', 'dev', 'pushcl0');
    sh(clientNs, 'ip', 'link', 'set', 'pushcl0', 'up');
    sh(clientNs, 'ip', 'route', 'add', '198.18.1.0/24', 'via', '198.18.2.2');
    sh(fleet.prober, 'ip', 'addr', 'add', '198.18.2.2/30', 'dev', 'pushcl1');
    sh(fleet.prober, 'ip', 'link', 'set', 'pushcl1', 'up');
    sh(fleet.prober, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  });

  after(async () => {
    await serve?.stop();
    await stopNftlb();
    if (clientMade) spawnSync('ip', ['netns', 'del', clientNs]);
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a dropped range goes down in GET /farms/app and out of the nftables rules, and comes back', async () => {
    writeServe('serve.yaml', '', true);
    serve = new ServeProcess(fleet, path.join(dir, 'serve.yaml'));
    await serve.ready();
    assert.equal(inRules().size, N);
    const range = Array.from({ length: 20 }, (_, k) => 40 + k);
    execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', '-f', '-'], {
      input: `table inet pushnl_range {\n chain input {\n  type filter hook input priority -10;\n  ip daddr ${ip(40)}-${ip(59)} tcp dport 80 drop\n }\n}\n`,
    });
    try {
      // Each poll of the API is a process started in the namespace (100-300 ms on a loaded machine): a loose bound.
      const t = await until('range down in nftlb', BOUND + 3000, stateIs(range, 'down'));
      assert.ok(t <= BOUND + 1500, `down in nftlb after ${t} ms (bound ${BOUND} + polling through a process per read)`);
      const rules = inRules();
      assert.equal(rules.size, N - range.length);
      for (const i of range) assert.ok(!rules.has(ip(i)), `${ip(i)} out of the rules`);
      // A client of the virtual address: every connection lands, none on a down backend.
      const before = fleet.acceptedConnections().length;
      const script = `const net=require('net');let ok=0,bad=0,n=0;const go=()=>{if(n++>=${N}){process.stdout.write(ok+' '+bad);return;}const s=net.connect(80,'${VIP}');s.setTimeout(2000);s.on('connect',()=>{ok++;s.end();go();});s.on('error',()=>{bad++;go();});s.on('timeout',()=>{bad++;s.destroy();go();});};go();`;
      const [ok, bad] = execFileSync('ip', ['netns', 'exec', clientNs, process.execPath, '-e', script], { encoding: 'utf8' }).split(' ').map(Number);
      assert.equal(bad, 0, 'every connection to the virtual address lands');
      assert.equal(ok, N);
      await waitFor(() => fleet.acceptedConnections().length - before >= N, 3000);
      const reached = new Set(fleet.acceptedConnections().slice(before).map((l) => l.split(' ')[2].replace(/^::ffff:/, '')));
      assert.ok(reached.size >= (N - range.length) / 2, `reached ${reached.size} backends`);
      for (const i of range) assert.ok(!reached.has(ip(i)), `${ip(i)} (down) got no connection`);
    } finally {
      fleet.unblock('pushnl_range');
    }
    await until('range up again', 3000, stateIs(range, 'up'));
    assert.equal(inRules().size, N);
  });

  test('a weight is a percentage of the farm\'s own weight', async () => {
    // bck30 has weight 10 in the farm; web30 says weight: 50.
    await until('weight 5', 3000, () => {
      const w = api('GET', '/farms/app').json?.farms?.[0]?.backends?.find((b: any) => b.name === 'bck30')?.weight;
      return w === '5' ? null : `weight ${w}`;
    });
  });

  test('maint is "off" and drain is "down" in nftlb; ready brings the backend back', async () => {
    const admin = (name: string, st: string) => Number(fleet.exec('prober', process.execPath, ['-e',
      `fetch('http://127.0.0.1:${HTTP}/backends/${name}/admin',{method:'PUT',headers:{authorization:'Bearer ${TOKEN}'},body:'${st}'}).then(r=>process.stdout.write(String(r.status)))`]));
    assert.equal(admin('web20', 'maint'), 200);
    assert.equal(admin('web21', 'drain'), 200);
    await until('maint off', 2000, stateIs([20], 'off'));
    await until('drain down', 2000, stateIs([21], 'down'));
    assert.ok(!inRules().has(ip(20)), 'maint: out of the rules');
    assert.ok(!inRules().has(ip(21)), `drain: out of the rules: ${JSON.stringify(states().get('bck21'))}`);
    assert.equal(admin('web20', 'ready'), 200);
    assert.equal(admin('web21', 'ready'), 200);
    await until('back up', 3000, stateIs([20, 21], 'up'));
  });

  test('an nftlb restart (back to its config, all up) is reconciled within poll + 1 s', async () => {
    fleet.block('pushnl_b7', ip(7), 80, 'reset');
    try {
      await until('bck7 down', BOUND + 3000, stateIs([7], 'down'));
      await stopNftlb();
      await startNftlb();
      const t0 = Date.now();
      await until('bck7 down after the restart', POLL + 1000 + 2000, stateIs([7], 'down'));
      assert.ok(Date.now() - t0 <= POLL + 1000, `reconciled ${Date.now() - t0} ms after nftlb answered again`);
      assert.ok(!inRules().has(ip(7)));
    } finally {
      fleet.unblock('pushnl_b7');
    }
    await until('bck7 up', 3000, stateIs([7], 'up'));
  });

  test('a wrong key is one line, retried; checking goes on; the right key is picked up', async () => {
    fs.writeFileSync(path.join(dir, 'key'), 'not-the-key\n');
    fleet.block('pushnl_b9', ip(9), 80, 'reset');
    const mark = serve!.stderr.length;
    try {
      assert.ok(await waitFor(() => serve!.json(HTTP, '/backends/web9').state === 'down', BOUND + 3000), 'serve goes on checking');
      await new Promise((r) => setTimeout(r, 2500));
      const lines = serve!.stderr.slice(mark).split('\n').filter((l) => /push nftlb:/.test(l));
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0], /401: nftlb refused the key in .*key; retrying in .* checking goes on/);
      assert.equal(states().get('bck9'), 'up', 'nothing reached nftlb');
      fs.writeFileSync(path.join(dir, 'key'), `${KEY}\n`);
      await until('bck9 down once the key is right', 35_000, stateIs([9], 'down'));
    } finally {
      fleet.unblock('pushnl_b9');
    }
    await until('bck9 up', 3000, stateIs([9], 'up'));
    await serve!.stop();
    serve = null;
  });

  test('discover: true checks exactly the farm\'s backends and follows one added and removed', async () => {
    writeServe('discover.yaml', ', discover: true', false);
    serve = new ServeProcess(fleet, path.join(dir, 'discover.yaml'));
    await serve.ready();
    const names = () => new Set((serve!.json(HTTP, '/backends') as any[]).map((b) => `${b.address}:${b.port}`));
    await until('discovered', 5000, () => (names().size === N ? null : `${names().size} backends`));
    assert.deepEqual(names(), new Set(Array.from({ length: N }, (_, i) => `${ip(i)}:80`)));
    // A discovered backend that fails goes down in the farm like a configured one.
    fleet.block('pushnl_b3', ip(3), 80, 'reset');
    try { await until('bck3 down', BOUND + 3000, stateIs([3], 'down')); } finally { fleet.unblock('pushnl_b3'); }
    // Added through the API (a port nobody listens on: serve finds it down and says so).
    assert.equal(api('POST', '/farms', { farms: [{ name: 'app', backends: [{ name: 'extra', 'ip-addr': ip(210), port: '81', state: 'up' }] }] }).status, 200);
    await until('the new backend checked', POLL + 3000, () => (names().has(`${ip(210)}:81`) ? null : 'not yet'));
    await until('the new backend down in nftlb', BOUND + 3000, () => (states().get('extra') === 'down' ? null : states().get('extra') ?? 'missing'));
    assert.equal(api('DELETE', '/farms/app/backends/extra').status, 200);
    await until('the removed backend forgotten', POLL + 3000, () => (names().has(`${ip(210)}:81`) ? 'still checked' : null));
    assert.ok(!states().has('extra'), 'serve did not bring it back');
    assert.equal(names().size, N);
  });
});
