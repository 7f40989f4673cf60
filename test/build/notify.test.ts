// The addon's sd_notify: one datagram to systemd's socket, by path or in the
// abstract namespace, as the watchdog (src/daemon/watchdog.ts) sends it.
// Needs the native build, not privileges.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { native } from '../../src/addon/addon';

describe('sd_notify', () => {
  const noPython = spawnSync('python3', ['--version']).status !== 0 && 'python3 is not installed (it binds the receiving unix datagram socket)';
  test('the addon sends the datagram to a unix socket, path and abstract', { skip: noPython }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-notify-'));
    try {
      for (const addr of [path.join(dir, 'notify'), `@halfopen-test-${process.pid}`]) {
        // Python binds, says so, prints the first datagram, and exits (5 s at most).
        const py = spawn('python3', ['-c', `import socket,sys
s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); a=sys.argv[1]
s.bind('\\0'+a[1:] if a[0]=='@' else a); s.settimeout(5); print('bound',flush=True); print(s.recv(100).decode(),flush=True)`, addr], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        py.stdout.on('data', (d) => { out += d; });
        const exited = new Promise((r) => py.on('exit', r));
        for (let i = 0; i < 100 && !out.includes('bound'); i++) await sleep(20);
        assert.equal(native.notify(addr, 'WATCHDOG=1'), 0);
        await exited;
        assert.equal(out, 'bound\nWATCHDOG=1\n');
      }
      assert.equal(native.notify('relative', 'READY=1'), 22); // EINVAL
      assert.equal(native.notify(path.join(dir, 'nobody'), 'READY=1'), 2); // ENOENT
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
