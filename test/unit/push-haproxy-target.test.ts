// The HAProxy target against a scripted stats socket (a unix socket speaking
// the Runtime API's prompt mode as HAProxy 2.6 does: each answer followed by
// "\n> "): the read-back at start corrects only what differs, in one
// connection; a batch is one connection; an error answer is a counted
// failure; a new pid in `show info` triggers a read-back; a refusing socket
// is retried and healed by a read-back on reconnect.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { HaproxyTarget } from '../../src/daemon/push/haproxy';
import type { BackendView } from '../../src/daemon/push/target';
import { waitFor } from '../../src/wait';

const HEAD = '1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n';

class FakeHaproxy {
  readonly server: net.Server;
  connections: string[][] = [];
  pid = 100;
  /** name → [op, admin, uweight, iweight, agent] */
  servers = new Map<string, [number, number, number, number, number]>();

  constructor(readonly sock: string) {
    this.server = net.createServer((c) => {
      let buf = '';
      const lines: string[] = [];
      this.connections.push(lines);
      c.setEncoding('utf8');
      c.on('data', (d: string) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line === 'quit') { c.end(); return; }
          if (line !== 'prompt') lines.push(line);
          c.write(`${this.answer(line)}\n> `);
        }
      });
      c.on('error', () => {});
    });
  }

  answer(line: string): string {
    if (line === 'prompt') return '';
    if (line === 'show info') return `Name: HAProxy\nPid: ${this.pid}\nUptime_sec: 5\n`;
    if (line === 'show servers state be') {
      return HEAD + [...this.servers].map(([n, [op, adm, uw, iw, ag]], i) => `2 be ${i + 1} ${n} 198.18.0.${i + 1} ${op} ${adm} ${uw} ${iw} 3 1 0 2 0 ${ag} 0 0 - 80 - 0 0 - - 0`).join('\n') + '\n';
    }
    const m = /^set server be\/(\S+) (state|health|agent|weight) (\S+)$/.exec(line);
    const s = m && this.servers.get(m[1]);
    if (!m || !s) return 'No such server.\n';
    if (m[2] === 'agent' && !s[4]) return 'agent checks are not enabled on this server.\n';
    if (m[2] === 'state') s[1] = m[3] === 'ready' ? 0 : m[3] === 'drain' ? 8 : 1;
    else if (m[2] === 'weight') s[2] = Math.floor((s[3] * Number(m[3].slice(0, -1))) / 100);
    else s[0] = m[3] === 'up' ? 2 : 0;
    return '';
  }

  listen(): Promise<void> { return new Promise((r) => this.server.listen(this.sock, () => r())); }
  close(): Promise<void> { return new Promise((r) => this.server.close(() => r())); }
  /** Connections that sent commands other than `show info` polls. */
  get work(): string[][] { return this.connections.filter((c) => c.some((l) => l !== 'show info')); }
}

const view = (name: string, state: 'up' | 'down', admin: BackendView['admin'] = 'ready', weight: number | null = null): BackendView =>
  ({ name, address: '198.18.0.1', port: 80, state, admin, weight });

describe('HAProxy target against a scripted stats socket', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-push-unit-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('read-back, batches, error answers, a new pid, a socket that comes back', async () => {
    const sock = path.join(dir, 'h.sock');
    const hap = new FakeHaproxy(sock);
    hap.servers.set('a', [2, 0, 100, 100, 0]);   // up, as serve says
    hap.servers.set('b', [2, 0, 100, 100, 22]);  // up, serve says down: agent-checked
    hap.servers.set('c', [2, 8, 100, 100, 0]);   // drained, serve says ready
    hap.servers.set('extra', [2, 0, 1, 1, 0]);
    await hap.listen();
    let views = [view('a', 'up'), view('b', 'down'), view('c', 'up', 'ready', 50), view('ghost', 'up')];
    const warnings: string[] = [];
    const t = new HaproxyTarget({ socket: { path: sock }, socketText: sock, backend: 'be', reconcile: 60_000, poll: 100, timeout: 1000 },
      { views: () => views, warn: (m) => warnings.push(m), discovered: () => {} });
    try {
      t.start();
      await t.reconcile();
      assert.deepEqual(hap.work[0], ['show info', 'show servers state be']);
      assert.deepEqual(hap.work[1], ['set server be/b agent down', 'set server be/c state ready', 'set server be/c weight 50%'], 'only what differs, one connection');
      assert.equal(t.counters.driftCorrected, 2);
      assert.equal(hap.servers.get('b')![0], 0);
      assert.ok(warnings.some((w) => /1 servers named in the config are not in HAProxy: be\/ghost/.test(w)));
      assert.ok(warnings.some((w) => /1 HAProxy servers are not checked by serve \(left alone\): be\/extra/.test(w)));

      // One batch: one connection, only the changed fields, nothing to the absent server.
      const before = hap.work.length;
      views = [view('a', 'down'), view('b', 'down'), view('c', 'up', 'drain', 50), view('ghost', 'down')];
      t.update([views[0], views[2], views[3]]);
      assert.ok(await waitFor(() => hap.work.length === before + 1, 2000));
      assert.deepEqual(hap.work[before], ['set server be/a health down', 'set server be/c state drain']);

      // An error answer is a failure, named in one warning.
      hap.servers.get('a')![4] = 0;
      hap.servers.delete('c');
      t.update([view('c', 'up', 'ready', 50)]); // not what views() says: the read-back below puts drain back
      assert.ok(await waitFor(() => t.counters.failures === 1, 2000));
      assert.ok(warnings.some((w) => /HAProxy refused 1 of \d commands, first "set server be\/c state ready": No such server\./.test(w)), warnings.join('\n'));
      hap.servers.set('c', [2, 0, 100, 100, 0]);

      // A new pid (restart or reload): the poll notices, the read-back corrects.
      const reconciles = t.counters.reconciles;
      hap.pid = 200;
      hap.servers.set('a', [2, 0, 100, 100, 0]); // back up after the "restart"
      assert.ok(await waitFor(() => t.counters.reconciles > reconciles && hap.servers.get('a')![0] === 0, 3000), 'reconciled after the pid changed');
      assert.ok(warnings.some((w) => /restarted or reloaded \(pid 100 → 200\)/.test(w)));

      // The socket goes away: retried; when it is back, a read-back heals what changed meanwhile.
      await hap.close();
      fs.rmSync(sock, { force: true });
      views = [view('a', 'up'), view('b', 'down'), view('c', 'up', 'maint', 50), view('ghost', 'up')];
      t.update(views);
      assert.ok(await waitFor(() => !t.counters.connected, 3000));
      const fresh = new FakeHaproxy(sock);
      fresh.servers.set('a', [0, 0, 100, 100, 0]);
      fresh.servers.set('b', [2, 0, 100, 100, 22]);
      fresh.servers.set('c', [2, 0, 100, 100, 0]);
      await fresh.listen();
      try {
        assert.ok(await waitFor(() => t.counters.connected && fresh.servers.get('c')![1] === 1 && fresh.servers.get('a')![0] === 2 && fresh.servers.get('b')![0] === 0, 5000),
          JSON.stringify([...fresh.servers]));
        assert.ok(warnings.some((w) => /connected again/.test(w)));
      } finally {
        await t.close();
        await fresh.close();
      }
    } finally {
      await t.close();
      if (hap.server.listening) await hap.close();
    }
  });
});
