// A real HAProxy (Debian 2.6) run by a test inside one of its namespaces,
// with its own stats socket in a temp dir; the test talks to the socket
// directly (a unix socket is a file, reachable from any namespace).
import { spawn, ChildProcess } from 'node:child_process';
import net from 'node:net';
import { waitFor } from '../../src/wait';
import { stopChild } from '../../src/fleet/stop-child';

export class HaproxyProcess {
  child: ChildProcess | null = null;
  stderr = '';

  constructor(readonly ns: string, readonly cfgFile: string, readonly socket: string, readonly masterWorker = false) {}

  async start(): Promise<void> {
    this.stderr = '';
    const args = ['netns', 'exec', this.ns, 'haproxy', '-db', ...(this.masterWorker ? ['-W'] : []), '-f', this.cfgFile];
    const child = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d) => { this.stderr += d; });
    this.child = child;
    if (!(await waitFor(() => this.child?.exitCode === null && this.infoSync() !== null, 10_000, 50))) throw new Error(`haproxy did not start: ${this.stderr}`);
  }

  private lastInfo: { pid: number } | null = null;
  /** Cached result of the last info() poll (waitFor wants a synchronous test). */
  private infoSync(): { pid: number } | null {
    void this.info().then((i) => { this.lastInfo = i; });
    return this.lastInfo;
  }

  async info(): Promise<{ pid: number } | null> {
    try {
      const m = /^Pid: (\d+)$/m.exec(await this.command('show info'));
      return m ? { pid: Number(m[1]) } : null;
    } catch { return null; }
  }

  command(cmd: string, timeoutMs = 2000): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = net.connect(this.socket);
      let b = '';
      const t = setTimeout(() => { s.destroy(); reject(new Error('haproxy socket timeout')); }, timeoutMs);
      s.on('connect', () => s.write(cmd + '\n'));
      s.on('data', (d) => { b += d; });
      s.on('error', (e) => { clearTimeout(t); reject(e); });
      s.on('close', () => { clearTimeout(t); resolve(b); });
    });
  }

  /** `show stat` rows of a backend's servers: name → { status, weight }. */
  async stat(backend: string): Promise<Map<string, { status: string; weight: number }>> {
    const lines = (await this.command('show stat')).split('\n');
    const head = lines[0].replace(/^# /, '').split(',');
    const si = head.indexOf('status'), wi = head.indexOf('weight');
    const out = new Map<string, { status: string; weight: number }>();
    for (const l of lines.slice(1)) {
      const f = l.split(',');
      if (f[0] === backend && f[1] !== 'BACKEND') out.set(f[1], { status: f[si], weight: Number(f[wi]) });
    }
    return out;
  }

  signal(sig: NodeJS.Signals): void { this.child?.kill(sig); }

  async stop(): Promise<void> {
    await stopChild(this.child);
    this.child = null;
  }
}
