// Runs `halfopen serve` inside a fleet's prober namespace and talks to it
// there (HTTP, agent) with small Node clients, since the test process itself
// lives outside the namespace.
import { ChildProcess } from 'node:child_process';
import { Fleet } from '../../src/fleet/fleet';
import { startCli } from './cli';
import { waitFor } from '../../src/wait';

export class ServeProcess {
  readonly child: ChildProcess;
  stderr = '';
  private exited: Promise<number | null>;

  constructor(readonly fleet: Fleet, config: string) {
    this.child = startCli(['serve', '--config', config], fleet);
    this.child.stderr!.on('data', (d) => { this.stderr += d; });
    this.child.stdout!.resume();
    this.exited = new Promise((r) => this.child.on('exit', (code) => r(code)));
  }

  async ready(ms = 10_000): Promise<void> {
    await waitFor(() => /checking \d+ backends/.test(this.stderr) || this.child.exitCode !== null, ms);
    if (!/checking \d+ backends/.test(this.stderr)) throw new Error(`serve did not start: ${this.stderr}`);
  }

  /** GET inside the prober namespace. */
  get(port: number, path: string): { status: number; body: string } {
    const script = `fetch('http://127.0.0.1:${port}${path}').then(async r => { process.stdout.write(r.status + '\\n' + await r.text()); }).catch(e => { process.stdout.write('0\\n' + e); })`;
    const out = this.fleet.exec('prober', process.execPath, ['-e', script]);
    const nl = out.indexOf('\n');
    return { status: Number(out.slice(0, nl)), body: out.slice(nl + 1) };
  }

  json(port: number, path: string): any { return JSON.parse(this.get(port, path).body); }

  /** One HAProxy-style agent exchange inside the prober namespace. */
  agent(port: number, send: string): string {
    const script = `const s = require('net').connect(${port}, '127.0.0.1', () => s.write(${JSON.stringify(send)})); let b = ''; s.on('data', d => b += d); s.on('close', () => process.stdout.write(b));`;
    return this.fleet.exec('prober', process.execPath, ['-e', script]);
  }

  signal(sig: NodeJS.Signals): void { this.child.kill(sig); }

  async stop(ms = 10_000): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), ms);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }

  wait(): Promise<number | null> { return this.exited; }
}

export { waitFor };

/** Makes one fleet address answer RST on a port (a stopped listener), or undoes it. */
export function setClosed(fleet: Fleet, table: string, addr: string, port: number, closed: boolean): void {
  if (closed) fleet.block(table, addr, port, 'reset');
  else fleet.unblock(table);
}
