// A capture of the SYNs arriving in a fleet (syn-capture.py inside the fleet's
// namespace): which source each probe left from, and when each SYN arrived.
import { spawn, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet } from '../../src/fleet/fleet';
import { ROOT } from './cli';

/** One SYN seen arriving: "src dst port time" as syn-capture.py writes it. */
export interface Syn { src: string; dst: string; port: number; time: number }
export const parseSyn = (line: string): Syn => {
  const [src, dst, port, time] = line.split(' ');
  return { src, dst, port: Number(port), time: Number(time) };
};

/**
 * Starts capturing on the fleet's interface into `out` (for at most
 * `seconds`); resolves once the capture is bound, with the function that
 * stops it and returns its lines.
 */
export async function captureSyns(fleet: Fleet, out: string, seconds = 120): Promise<() => Promise<string[]>> {
  const script = path.join(ROOT, 'test/helpers/syn-capture.py');
  const child: ChildProcess = spawn('ip', ['netns', 'exec', fleet.fleet, 'python3', script, fleet.fleetIf, String(seconds), out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('syn-capture did not start')), 10_000);
    child.stdout!.on('data', (d) => { text += d; if (text.includes('ready\n')) { clearTimeout(t); resolve(); } });
    child.on('exit', (c) => { clearTimeout(t); reject(new Error(`syn-capture exited ${c}`)); });
  });
  return async () => {
    await sleep(200); // the last SYNs still on their way through the veth
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    return fs.readFileSync(out, 'utf8').split('\n').filter(Boolean);
  };
}
