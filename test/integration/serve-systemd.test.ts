// serve under a stand-in for systemd: a unix datagram socket in NOTIFY_SOCKET
// (bound by python3; Node cannot) collects what serve reports. READY=1 once
// it checks, WATCHDOG=1 at a third of WATCHDOG_USEC while healthy, STOPPING=1
// on SIGTERM; and the hook, a child, does not inherit NOTIFY_SOCKET.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import { MAIN, ROOT } from '../helpers/cli';
import { waitFor } from '../../src/wait';

const skip = netnsSkipReason() || (spawnSync('python3', ['--version']).status !== 0 && 'needs python3 (it binds the notify socket)');

/** Prints 'bound', then one line per datagram; ends when stdin closes, or after 60 s. */
const RECEIVER = `import socket, sys, select, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print('bound', flush=True)
end = time.time() + 60
while time.time() < end:
    r, _, _ = select.select([s, sys.stdin], [], [], 0.5)
    if sys.stdin in r and not sys.stdin.read(1):
        break
    if s in r:
        print(s.recv(4096).decode().replace('\\n', ' '), flush=True)
`;

describe('serve under systemd notification', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  let receiver: ChildProcess;
  let serve: ChildProcess;
  let messages: string[] = [];
  let stderr = '';
  let exited: Promise<number | null>;

  before(async () => {
    fleet = await Fleet.create({ tag: 'sdn', v4: '198.18.4.0/28', open: [80] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-sdnotify-'));
    const sock = path.join(dir, 'notify');
    receiver = spawn('python3', ['-c', RECEIVER, sock], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    receiver.stdout!.on('data', (d) => { out += d; messages = out.split('\n').filter(Boolean).slice(1); });
    assert.ok(await waitFor(() => out.startsWith('bound'), 5000));
    const config = path.join(dir, 'serve.yaml');
    fs.writeFileSync(config, `defaults: { interval: 200ms, timeout: 100ms }
hooks: { on_change: 'echo "[$NOTIFY_SOCKET]" > ${dir}/hook-env' }
backends:
  - { name: up1, host: 198.18.4.1, port: 80 }
  - { name: down1, host: 198.18.4.2, port: 81 }
`);
    serve = spawn('ip', ['netns', 'exec', fleet.prober, 'env', `NOTIFY_SOCKET=${sock}`, 'WATCHDOG_USEC=600000', process.execPath, MAIN, 'serve', '--config', config],
      { stdio: ['ignore', 'ignore', 'pipe'], cwd: ROOT });
    serve.stderr!.on('data', (d) => { stderr += d; });
    exited = new Promise((r) => serve.on('exit', (code) => r(code)));
  });
  after(async () => {
    if (serve && serve.exitCode === null) { serve.kill('SIGKILL'); await exited; }
    receiver?.stdin?.end();
    if (receiver && receiver.exitCode === null) receiver.kill('SIGTERM');
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('READY=1 once checking, then WATCHDOG=1 about every 200 ms, STOPPING=1 at SIGTERM; hooks do not inherit NOTIFY_SOCKET', async () => {
    assert.ok(await waitFor(() => messages.includes('READY=1'), 15_000), stderr);
    assert.match(stderr, /checking 2 backends/);
    assert.equal(messages[0], 'READY=1');
    const t0 = Date.now();
    assert.ok(await waitFor(() => messages.filter((m) => m === 'WATCHDOG=1').length >= 5, 5000), messages.join(' | '));
    // The sd_watchdog contract: pings at a third of WATCHDOG_USEC (WATCHDOG_USEC is 600 ms here: a ping every 200 ms, 5 in about 1 s);
    // 2.5 s still tells that from pinging at WATCHDOG_USEC itself (5 pings in 3 s).
    assert.ok(Date.now() - t0 < 2500, 'pings at a third of WATCHDOG_USEC (600 ms), not slower');
    // down1 going down ran the hook: it saw no NOTIFY_SOCKET.
    assert.ok(await waitFor(() => fs.existsSync(path.join(dir, 'hook-env')), 5000), stderr);
    assert.equal(fs.readFileSync(path.join(dir, 'hook-env'), 'utf8'), '[]\n');
    serve.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    assert.ok(await waitFor(() => messages.includes('STOPPING=1'), 2000), messages.join(' | '));
    assert.ok(!messages.some((m) => m.startsWith('STATUS=scheduler unhealthy')), messages.join(' | '));
  });
});
