// Replies that arrive late: delayed-responder.py in a fleet's namespace
// answers SYNs to a prefix of its own with SYN+ACKs after a per-address
// delay (this kernel has no netem, and no fq for timed departures).
import { spawn, ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Fleet, FLEET_V4 } from '../../src/fleet/fleet';
import { mustParseAddress, v4ToNumber } from '../../src/targets/address';
import { ROOT } from './cli';

export interface Delayed {
  prefix: string;
  minMs: number;
  maxMs: number;
  /** Addresses whose last 32 bits are a multiple of this never answer (0: none). */
  silentEvery: number;
  /** What a correct sweep reports for an address of the prefix. */
  truth(ip: string): 'open' | 'filtered';
  stop(): Promise<string>;
}

/** Starts the responder for `prefix` (outside the fleet's own v4) and routes the prober to it. */
export async function delayedReplies(fleet: Fleet, prefix: string, minMs: number, maxMs: number, silentEvery: number, seconds = 120): Promise<Delayed> {
  fleet.exec('prober', 'ip', ['route', 'add', prefix, 'via', FLEET_V4]);
  const script = path.join(ROOT, 'test/helpers/delayed-responder.py');
  const child: ChildProcess = spawn('ip', ['netns', 'exec', fleet.fleet, 'python3', script, fleet.fleetIf, prefix, String(minMs), String(maxMs), String(silentEvery), String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stderr!.on('data', (d) => { err += d; });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('delayed responder did not start within 10 s')), 10_000);
    child.stdout!.on('data', (d) => { out += d; if (out.includes('ready\n')) { clearTimeout(timer); resolve(); } });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`delayed responder exited (${code}): ${err.trim()}`)); });
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    prefix, minMs, maxMs, silentEvery,
    truth: (ip) => (silentEvery && v4ToNumber(mustParseAddress(ip)) % silentEvery === 0 ? 'filtered' : 'open'),
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      return out;
    },
  };
}
