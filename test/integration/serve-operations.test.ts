// `halfopen serve` as operators run it on a load balancer: the admin API
// (drain, maintenance) behind its token, HAProxy 2.6 following the agent's
// admin states and slow-start weights, host names followed through a real DNS
// server (dnsmasq in the fleet) whose records change, failed checks logged,
// and a restart that keeps every state through the state file.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet, FLEET_V4 } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import { ServeProcess, waitFor, setClosed } from '../helpers/serve';

const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
const skip = netnsSkipReason();
const TOKEN = 'k3y-for-the-admin-api-0123456789';

/** An HTTP request from inside the prober namespace: status, body. */
function request(fleet: Fleet, method: string, url: string, opts: { token?: string; body?: string; headers?: Record<string, string> } = {}): { status: number; body: string } {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const script = `fetch(${JSON.stringify(url)}, { method: ${JSON.stringify(method)}, headers: ${JSON.stringify(headers)}${opts.body !== undefined ? `, body: ${JSON.stringify(opts.body)}` : ''} })
    .then(async (r) => process.stdout.write(r.status + '\\n' + await r.text())).catch((e) => process.stdout.write('0\\n' + e));`;
  const out = fleet.exec('prober', process.execPath, ['-e', script]);
  const nl = out.indexOf('\n');
  return { status: Number(out.slice(0, nl)), body: out.slice(nl + 1) };
}

function tmpdir(tag: string): string { return fs.mkdtempSync(path.join(os.tmpdir(), `halfopen-${tag}-`)); }

const events = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);

describe('serve admin API: off without a token file, refused without the right token', { skip }, () => {
  test('unconfigured, no token, wrong token, unknown backend, bad method, oversized and malformed bodies: refused, nothing changed', async () => {
    const fleet = await Fleet.create({ tag: 'admin', v4: '198.18.0.0/24', open: [80] });
    const dir = tmpdir('admin');
    const procs: ServeProcess[] = [];
    try {
      const tokenFile = path.join(dir, 'token');
      fs.writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
      const yaml = (port: number, admin: string) => `${admin}\nlisten: { http: "127.0.0.1:${port}" }\ndefaults: { interval: 300ms, timeout: 200ms }\nbackends:\n  - { name: web1, host: 198.18.0.1, port: 80 }\n`;
      fs.writeFileSync(path.join(dir, 'off.yaml'), yaml(9501, ''));
      fs.writeFileSync(path.join(dir, 'on.yaml'), yaml(9502, `admin: { token_file: ${tokenFile} }`));
      const off = new ServeProcess(fleet, path.join(dir, 'off.yaml'));
      procs.push(off);
      await off.ready();
      let r = request(fleet, 'PUT', 'http://127.0.0.1:9501/backends/web1/admin', { token: TOKEN, body: 'drain' });
      assert.equal(r.status, 404);
      assert.match(r.body, /admin API is off/);
      await off.stop();

      const on = new ServeProcess(fleet, path.join(dir, 'on.yaml'));
      procs.push(on);
      await on.ready();
      const url = 'http://127.0.0.1:9502/backends/web1/admin';
      const refusedFrom = Date.now();
      const refused: Array<[string, { status: number; body: string }, number]> = [
        ['no token', request(fleet, 'PUT', url, { body: 'drain' }), 401],
        ['wrong token', request(fleet, 'PUT', url, { token: `${TOKEN}x`, body: 'drain' }), 403],
        ['another scheme', request(fleet, 'PUT', url, { headers: { authorization: `Basic ${Buffer.from(`a:${TOKEN}`).toString('base64')}` }, body: 'drain' }), 401],
        ['unknown backend', request(fleet, 'PUT', 'http://127.0.0.1:9502/backends/nosuch/admin', { token: TOKEN, body: 'drain' }), 404],
        ['GET', request(fleet, 'GET', url, { token: TOKEN }), 405],
        ['oversized body', request(fleet, 'PUT', url, { token: TOKEN, body: 'drain'.padEnd(100_000, ' ') }), 413],
        ['malformed body', request(fleet, 'PUT', url, { token: TOKEN, body: 'drained' }), 400],
        ['empty body', request(fleet, 'PUT', url, { token: TOKEN, body: '' }), 400],
      ];
      for (const [what, res, status] of refused) assert.equal(res.status, status, `${what}: ${res.body}`);
      assert.equal(on.json(9502, '/backends/web1').admin, 'ready', 'nothing changed');
      assert.ok(await waitFor(() => /admin: refused PUT \/backends\/web1\/admin from 127\.0\.0\.1: missing bearer token/.test(on.stderr), 3000), on.stderr);
      // The promise is a rate, not a speed: at most one line per 10 s over however long the refusals took (2 when under 10 s).
      const refusalLines = (on.stderr.match(/admin: refused/g) ?? []).length;
      assert.ok(refusalLines <= 2 + Math.floor((Date.now() - refusedFrom) / 10_000), `refusals are logged at most once per 10 s:\n${on.stderr}`);

      r = request(fleet, 'PUT', url, { token: TOKEN, body: 'drain\n' });
      assert.equal(r.status, 200, r.body);
      assert.equal(JSON.parse(r.body).admin, 'drain');
      assert.match(on.get(9502, '/metrics').body, /halfopen_backend_admin_state\{backend="web1",address="198\.18\.0\.1",port="80",state="drain"\} 1/);
    } finally {
      for (const p of procs) await p.stop();
      fleet.remove();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('serve with HAProxy 2.6: drain, maintenance and slow start through the agent', { skip: skip || (!has('haproxy') && 'haproxy not installed') }, () => {
  test('HAProxy follows drain, maint and ready, and ramps the weight after a recovery', async () => {
    const fleet = await Fleet.create({ tag: 'hapadm', v4: '198.18.0.0/24', open: [80] });
    const dir = tmpdir('hapadm');
    let serve: ServeProcess | undefined;
    let haproxy: ChildProcess | undefined;
    try {
      const tokenFile = path.join(dir, 'token');
      fs.writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
      const ev = path.join(dir, 'events.ndjson');
      fs.writeFileSync(path.join(dir, 'serve.yaml'), `
defaults: { interval: 300ms, timeout: 200ms, fastinter: 100ms, rise: 2, fall: 2, jitter: 0, slowstart: 4s }
listen: { http: "127.0.0.1:9511", agent: "127.0.0.1:9512" }
admin: { token_file: ${tokenFile} }
events: ${ev}
backends:
  - { name: app1, host: 198.18.0.11, port: 80, weight: 80 }
  - { name: app2, host: 198.18.0.12, port: 80 }
`);
      serve = new ServeProcess(fleet, path.join(dir, 'serve.yaml'));
      await serve.ready();
      const server = (n: string, ip: string) => `  server ${n} ${ip}:80 weight 100 agent-check agent-addr 127.0.0.1 agent-port 9512 agent-send "${n}\\n" agent-inter 100ms\n`;
      fs.writeFileSync(path.join(dir, 'haproxy.cfg'), `global\n  stats socket ${dir}/haproxy.sock mode 600 level admin\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\nbackend be\n${server('app1', '198.18.0.11')}${server('app2', '198.18.0.12')}`);
      haproxy = spawn('ip', ['netns', 'exec', fleet.prober, 'haproxy', '-db', '-f', path.join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'pipe'] });
      const cmd = (c: string) => fleet.exec('prober', process.execPath, ['-e',
        `const s = require('net').connect(${JSON.stringify(path.join(dir, 'haproxy.sock'))}, () => s.write(${JSON.stringify(c + '\n')})); let b = ''; s.on('data', d => b += d); s.on('close', () => process.stdout.write(b)); s.on('error', () => {});`]);
      /**
       * HAProxy's view of a server from `show servers state`: UP/DOWN from
       * srv_op_state, DRAIN and MAINT from srv_admin_state (the agent's drain
       * sets FDRAIN 0x08, its maint FMAINT 0x01), and srv_uweight.
       */
      const stat = (name: string) => {
        const row = cmd('show servers state be').split('\n').find((l) => l.split(' ')[3] === name)?.split(' ') ?? [];
        const op = Number(row[5]), adm = Number(row[6]);
        const status = adm & 0x01 ? 'MAINT' : adm & 0x08 ? 'DRAIN' : op === 2 ? 'UP' : op === 0 ? 'DOWN' : `op ${row[5]}`;
        return { status, weight: Number(row[7]) };
      };
      const admin = (name: string, state: string) => request(fleet, 'PUT', `http://127.0.0.1:9511/backends/${name}/admin`, { token: TOKEN, body: state });

      assert.ok(await waitFor(() => fs.existsSync(path.join(dir, 'haproxy.sock')) && stat('app1').status === 'UP' && stat('app1').weight === 80, 10_000), JSON.stringify(stat('app1')));
      assert.equal(serve.agent(9512, 'app1\n'), 'up ready 80%\n');

      assert.equal(admin('app1', 'drain').status, 200);
      assert.ok(await waitFor(() => stat('app1').status === 'DRAIN', 5000), JSON.stringify(stat('app1')));
      assert.equal(serve.agent(9512, 'app1\n'), 'up drain\n');
      assert.equal(admin('app1', 'maint').status, 200);
      assert.ok(await waitFor(() => /^MAINT/.test(stat('app1').status), 5000), JSON.stringify(stat('app1')));
      assert.equal(serve.agent(9512, 'app1\n'), 'maint #maintenance\n');
      const checks = serve.json(9511, '/backends/app1').counters.checks;
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(serve.json(9511, '/backends/app1').counters.checks, checks, 'no checks in maintenance');
      assert.equal(admin('app1', 'ready').status, 200);
      assert.ok(await waitFor(() => stat('app1').status === 'UP', 5000), JSON.stringify(stat('app1')));
      const adminEvents = events(ev).filter((e) => e.event === 'admin').map((e) => `${e.backend} ${e.from}->${e.to}`);
      assert.deepEqual(adminEvents, ['app1 ready->drain', 'app1 drain->maint', 'app1 maint->ready']);

      // Slow start: app2 goes down, comes back, and its weight climbs from 10 % to 100 % over 4 s.
      setClosed(fleet, 'hap_slow', '198.18.0.12', 80, true);
      assert.ok(await waitFor(() => stat('app2').status.startsWith('DOWN'), 5000), JSON.stringify(stat('app2')));
      setClosed(fleet, 'hap_slow', '198.18.0.12', 80, false);
      assert.ok(await waitFor(() => serve!.json(9511, '/backends/app2').state === 'up', 5000));
      const seen: number[] = [];
      const t0 = Date.now();
      while (Date.now() - t0 < 6000) {
        const w = serve.json(9511, '/backends/app2').effective_weight;
        const h = stat('app2');
        if (h.status === 'UP') seen.push(h.weight);
        if (w === 100 && seen.length > 3) break;
        await new Promise((r) => setTimeout(r, 300));
      }
      assert.ok(seen.some((w) => w > 0 && w < 60), `HAProxy saw a small weight first: ${seen}`);
      assert.ok(seen.some((w, i) => i > 0 && w > seen[0]), `then larger ones: ${seen}`);
      assert.ok(await waitFor(() => stat('app2').weight === 100, 5000), `then the full weight: ${JSON.stringify(stat('app2'))}`);
    } finally {
      if (haproxy && haproxy.exitCode === null) { haproxy.kill('SIGTERM'); await new Promise((r) => haproxy!.once('exit', r)); }
      await serve?.stop();
      fleet.remove();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('serve follows DNS: dnsmasq in the fleet, records changed under it', { skip: skip || (!has('dnsmasq') && 'dnsmasq not installed (package dnsmasq-base)') }, () => {
  test('an address change moves the backend within a resolve interval, keeping its history; no address makes it down (unresolved), not the daemon', async () => {
    const fleet = await Fleet.create({ tag: 'dns', v4: '198.18.0.0/24', open: [80] });
    const dir = tmpdir('dns');
    let serve: ServeProcess | undefined;
    let dnsmasq: ChildProcess | undefined;
    try {
      const hosts = path.join(dir, 'hosts');
      fs.writeFileSync(hosts, '198.18.0.21 app.fleet.test\n');
      dnsmasq = spawn('ip', ['netns', 'exec', fleet.fleet, 'dnsmasq', '--keep-in-foreground', '--no-resolv', '--no-hosts', `--addn-hosts=${hosts}`,
        '--local-ttl=1', `--listen-address=${FLEET_V4}`, '--bind-interfaces', '--port=53', `--pid-file=${path.join(dir, 'dnsmasq.pid')}`, '--user=root', '--log-facility=-'],
      { stdio: ['ignore', 'ignore', 'pipe'] });
      fs.mkdirSync(`/etc/netns/${fleet.prober}`, { recursive: true });
      fs.writeFileSync(`/etc/netns/${fleet.prober}/resolv.conf`, `nameserver ${FLEET_V4}\noptions timeout:1 attempts:1\n`);
      assert.ok(await waitFor(() => spawnSync('ip', ['netns', 'exec', fleet.prober, 'getent', 'ahostsv4', 'app.fleet.test'], { encoding: 'utf8' }).stdout.includes('198.18.0.21'), 5000), 'dnsmasq answers');
      fs.writeFileSync(path.join(dir, 'serve.yaml'), `
defaults: { interval: 300ms, timeout: 200ms, fastinter: 100ms, rise: 1, fall: 2, jitter: 0, resolve_interval: 1s }
listen: { http: "127.0.0.1:9521", agent: "127.0.0.1:9522" }
backends:
  - { name: app, host: app.fleet.test, port: 80 }
  - { name: ghost, host: ghost.fleet.test, port: 80 }
  - { name: fixed, host: 198.18.0.30, port: 80 }
`);
      serve = new ServeProcess(fleet, path.join(dir, 'serve.yaml'));
      await serve.ready();
      const get = (n: string) => serve!.json(9521, `/backends/${n}`);
      assert.ok(await waitFor(() => get('app').state === 'up' && get('app').counters.checks >= 3, 5000), JSON.stringify(get('app')));
      assert.equal(get('app').address, '198.18.0.21');
      const ghost = get('ghost');
      assert.equal(ghost.state, 'down');
      assert.equal(ghost.down_reason, 'unresolved');
      assert.match(serve.agent(9522, 'ghost\n'), /^down ready #unresolved: ghost\.fleet\.test/);
      assert.equal(get('fixed').state, 'up', 'the daemon runs on');

      const before = get('app').counters.checks;
      fs.writeFileSync(hosts, '198.18.0.22 app.fleet.test\n198.18.0.23 ghost.fleet.test\n');
      process.kill(Number(fs.readFileSync(path.join(dir, 'dnsmasq.pid'), 'utf8')), 'SIGHUP');
      const t0 = Date.now();
      assert.ok(await waitFor(() => get('app').address === '198.18.0.22', 5000), JSON.stringify(get('app')));
      const moved = Date.now() - t0;
      // README, serve, Host names: looked up again every resolve_interval, or when the TTL runs out
      // if sooner: here both 1 s, so the move is due within 1 s of the change; 1.5 s of margin on top.
      assert.ok(moved <= 1000 + 1000 + 1500, `moved after ${moved} ms (resolve interval 1 s, TTL 1 s)`);
      assert.ok(get('app').counters.checks >= before, 'history kept');
      assert.ok(await waitFor(() => get('app').state === 'up' && get('ghost').state === 'up', 5000), JSON.stringify(get('ghost')));
      assert.equal(get('ghost').address, '198.18.0.23');

      fs.writeFileSync(hosts, '198.18.0.23 ghost.fleet.test\n');
      process.kill(Number(fs.readFileSync(path.join(dir, 'dnsmasq.pid'), 'utf8')), 'SIGHUP');
      assert.ok(await waitFor(() => get('app').state === 'down' && get('app').down_reason === 'unresolved', 5000), JSON.stringify(get('app')));
      assert.equal(get('fixed').state, 'up');
    } finally {
      await serve?.stop();
      if (dnsmasq && dnsmasq.exitCode === null) { dnsmasq.kill('SIGTERM'); await new Promise((r) => dnsmasq!.once('exit', r)); }
      fleet.remove();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('serve state file and failure log', { skip }, () => {
  test('a restart keeps every state, admin state and counter, with no flap; a corrupt file is one warning; log_failures logs every failed check', async () => {
    const fleet = await Fleet.create({ tag: 'state', v4: '198.18.0.0/24', open: [80], closed: ['198.18.0.3/32'] });
    const dir = tmpdir('state');
    const procs: ServeProcess[] = [];
    try {
      const tokenFile = path.join(dir, 'token');
      fs.writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
      const stateFile = path.join(dir, 'state.json');
      const ev = path.join(dir, 'events.ndjson');
      const cfg = path.join(dir, 'serve.yaml');
      fs.writeFileSync(cfg, `
defaults: { interval: 300ms, timeout: 200ms, fastinter: 100ms, rise: 2, fall: 2, jitter: 0 }
listen: { http: "127.0.0.1:9531" }
admin: { token_file: ${tokenFile} }
state_file: ${stateFile}
events: ${ev}
backends:
  - { name: up1, host: 198.18.0.1, port: 80 }
  - { name: drained, host: 198.18.0.2, port: 80 }
  - { name: closed, host: 198.18.0.3, port: 80, log_failures: true }
  - { name: maint, host: 198.18.0.4, port: 80 }
`);
      const first = new ServeProcess(fleet, cfg);
      procs.push(first);
      await first.ready();
      assert.ok(await waitFor(() => first.json(9531, '/backends/closed').state === 'down', 5000));
      for (const [n, s] of [['drained', 'drain'], ['maint', 'maint']]) assert.equal(request(fleet, 'PUT', `http://127.0.0.1:9531/backends/${n}/admin`, { token: TOKEN, body: s }).status, 200);
      await new Promise((r) => setTimeout(r, 500));
      const failed = events(ev).filter((e) => e.event === 'check' && e.backend === 'closed');
      assert.ok(failed.length >= 2 && failed.every((e) => e.reason === 'rst'), `every failed check logged: ${failed.length}`);
      const before = Object.fromEntries(first.json(9531, '/backends').map((b: any) => [b.name, b]));
      assert.equal(await first.stop(), 0);
      const saved = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
      assert.equal(saved.backends.maint.admin, 'maint');

      const n0 = events(ev).filter((e) => e.event !== 'check').length;
      const second = new ServeProcess(fleet, cfg);
      procs.push(second);
      await second.ready();
      assert.match(second.stderr, /state of 4 backends restored/);
      await new Promise((r) => setTimeout(r, 1500));
      const after = Object.fromEntries(second.json(9531, '/backends').map((b: any) => [b.name, b]));
      for (const n of ['up1', 'drained', 'closed', 'maint']) {
        assert.equal(after[n].state, before[n].state, `${n} state`);
        assert.equal(after[n].admin, before[n].admin, `${n} admin`);
        assert.equal(after[n].since, before[n].since, `${n} since`);
        assert.ok(after[n].counters.checks >= before[n].counters.checks, `${n} counters continue`);
      }
      assert.deepEqual(events(ev).filter((e) => e.event !== 'check').slice(n0), [], 'no state or admin change at restart');
      await second.stop();

      fs.writeFileSync(stateFile, '{"version": 1, "written": "not json');
      const third = new ServeProcess(fleet, cfg);
      procs.push(third);
      await third.ready();
      assert.match(third.stderr, /warning: state file ignored: .*state\.json is not valid JSON/);
      assert.equal(third.json(9531, '/backends/maint').admin, 'ready');
    } finally {
      for (const p of procs) await p.stop();
      fleet.remove();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
