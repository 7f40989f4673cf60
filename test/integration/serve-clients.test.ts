// Real clients of `halfopen serve`: Debian's HAProxy following the agent-check
// responder, and the status page rendered by headless Chromium.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import { ServeProcess, waitFor, setClosed } from '../helpers/serve';
import { ROOT } from '../helpers/cli';

const HTTP = 9280, AGENT = 9281;
const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
const skip = netnsSkipReason() || (!has('haproxy') && 'haproxy not installed (scripts/setup.sh installs it)');

describe('serve with HAProxy agent-check and the status page', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  let serve: ServeProcess;
  let haproxy: ChildProcess | null = null;

  before(async () => {
    fleet = await Fleet.create({ tag: 'haproxy', v4: '198.18.0.0/24', v6: '2001:2::/120', open: [80] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-haproxy-'));
    fs.writeFileSync(path.join(dir, 'serve.yaml'), `
defaults: { interval: 300ms, timeout: 200ms, fastinter: 100ms, rise: 2, fall: 2, jitter: 0 }
listen: { http: "127.0.0.1:${HTTP}", agent: "127.0.0.1:${AGENT}" }
backends:
  - { name: app1, host: 198.18.0.11, port: 80 }
  - { name: app2, host: 198.18.0.12, port: 80 }
  - { name: app6, host: "2001:2::9", port: 80 }
`);
    serve = new ServeProcess(fleet, path.join(dir, 'serve.yaml'));
    await serve.ready();
    const server = (n: string, ip: string) =>
      `  server ${n} ${ip}:80 agent-check agent-addr 127.0.0.1 agent-port ${AGENT} agent-send "${n}\\n" agent-inter 200ms\n`;
    fs.writeFileSync(path.join(dir, 'haproxy.cfg'), `global
  stats socket ${dir}/haproxy.sock mode 600 level admin
defaults
  mode tcp
  timeout connect 1s
  timeout client 5s
  timeout server 5s
backend be
${server('app1', '198.18.0.11')}${server('app2', '198.18.0.12')}
frontend fe
  bind 127.0.0.1:9282
  default_backend be
`);
    haproxy = spawn('ip', ['netns', 'exec', fleet.prober, 'haproxy', '-db', '-f', path.join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'pipe'] });
  });

  after(async () => {
    if (haproxy && haproxy.exitCode === null) {
      haproxy.kill('SIGTERM');
      await new Promise((r) => haproxy!.once('exit', r));
    }
    await serve?.stop();
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  function haproxyCommand(cmd: string): string {
    const script = `const s = require('net').connect(${JSON.stringify(path.join(dir, 'haproxy.sock'))}, () => s.write(${JSON.stringify(cmd + '\n')})); let b = ''; s.on('data', d => b += d); s.on('close', () => process.stdout.write(b)); s.on('error', () => {});`;
    return fleet.exec('prober', process.execPath, ['-e', script]);
  }

  /** HAProxy's operational state of a server: 'running' (srv_op_state 2) or 'stopped' (0). */
  function haproxyState(name: string): string {
    const row = haproxyCommand('show servers state be').split('\n').find((l) => l.split(' ')[3] === name);
    if (!row) return 'missing';
    const op = row.split(' ')[5];
    return op === '2' ? 'running' : op === '0' ? 'stopped' : `op_state ${op}`;
  }

  /** The status column of HAProxy's stats for a server ("DOWN (agent)", …). */
  function haproxyStatus(name: string): string {
    const lines = haproxyCommand('show stat').split('\n');
    const head = lines[0].replace(/^# /, '').split(',');
    const row = lines.find((l) => l.startsWith(`be,${name},`));
    return row ? row.split(',')[head.indexOf('status')] : 'missing';
  }

  test('HAProxy marks a server DOWN when its backend stops answering, and UP again', async () => {
    assert.ok(await waitFor(() => haproxyState('app1') === 'running' && haproxyState('app2') === 'running', 10_000), `app2 ${haproxyState('app2')}`);
    const t0 = Date.now();
    setClosed(fleet, 'hap_app2', '198.18.0.12', 80, true);
    // fall 2 at fastinter after the first failure, then HAProxy's agent-inter: the bound below is
    // serve's detection bound plus HAProxy's agent-inter (README, serve, HAProxy agent-check), with 500 ms of margin.
    assert.ok(await waitFor(() => haproxyState('app2') === 'stopped', 5000), haproxyState('app2'));
    assert.equal(haproxyStatus('app2'), 'DOWN (agent)');
    const downMs = Date.now() - t0;
    assert.ok(downMs < 300 + 100 + 2 * 200 + 200 + 500, `HAProxy saw it down after ${downMs} ms`);
    assert.equal(haproxyState('app1'), 'running');
    setClosed(fleet, 'hap_app2', '198.18.0.12', 80, false);
    assert.ok(await waitFor(() => haproxyState('app2') === 'running', 5000), haproxyState('app2'));
  });

  test('the status page in headless Chromium shows the states and follows a change', { skip: !has('chromium') && 'chromium not installed' }, async () => {
    const chrome = (args: string[]) => spawnSync('ip', ['netns', 'exec', fleet.prober, 'chromium', '--headless', '--no-sandbox', '--disable-gpu',
      '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--user-data-dir=${path.join(dir, 'chrome')}`, '--virtual-time-budget=2500', ...args, `http://127.0.0.1:${HTTP}/`], { encoding: 'utf8', timeout: 60_000 });
    const states = (dom: string) => Object.fromEntries([...dom.matchAll(/data-backend="([^"]+)" data-state="(\w+)"/g)].map((m) => [m[1], m[2]]));
    let r = chrome(['--dump-dom']);
    assert.deepEqual(states(r.stdout), { app1: 'up', app2: 'up', app6: 'up' }, r.stderr);
    assert.match(r.stdout, /<td>\[2001:2::9\]:80<\/td>/, 'an IPv6 address and its port, bracketed');
    setClosed(fleet, 'hap_app1', '198.18.0.11', 80, true);
    try {
      assert.ok(await waitFor(() => serve.json(HTTP, '/backends/app1').state === 'down', 5000));
      r = chrome(['--dump-dom']);
      assert.deepEqual(states(r.stdout), { app1: 'down', app2: 'up', app6: 'up' });
      assert.match(r.stdout, /2 up, 1 down/);
      const shot = path.join(ROOT, 'test', 'screenshots');
      fs.mkdirSync(shot, { recursive: true });
      const png = path.join(shot, 'status-page.png');
      chrome([`--screenshot=${png}`, '--window-size=1100,260']);
      assert.ok(fs.statSync(png).size > 1000, 'screenshot written');
    } finally {
      setClosed(fleet, 'hap_app1', '198.18.0.11', 80, false);
    }
  });
});
