// Runs the halfopen CLI (compiled) as a child process, optionally inside a
// fleet's prober namespace, with a hard time limit.
import { spawn, ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Fleet } from '../../src/fleet/fleet';

export const ROOT = path.resolve(__dirname, '../../..');
export const MAIN = path.join(ROOT, 'dist/src/cli/main.js');

export interface CliResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** `wrap` goes between the namespace and node, e.g. setpriv to drop privileges. */
export function startCli(args: string[], fleet?: Fleet, wrap: string[] = []): ChildProcess {
  const argv = [...(fleet ? fleet.proberArgv() : []), ...wrap, process.execPath, MAIN, ...args];
  return spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
}

export function collect(child: ChildProcess, timeoutMs = 60_000): Promise<CliResult> {
  let stdout = '', stderr = '';
  child.stdout!.on('data', (d) => { stdout += d; });
  child.stderr!.on('data', (d) => { stderr += d; });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // 'exit' can precede the last 'data' events: wait for the streams to close.
      child.stdout!.on('close', () => resolve({ code, signal, stdout, stderr }));
      if (child.stdout!.closed) resolve({ code, signal, stdout, stderr });
    });
  });
}

export const runCli = (args: string[], fleet?: Fleet, timeoutMs?: number, wrap?: string[]) => collect(startCli(args, fleet, wrap), timeoutMs);

export const parseNdjson = (text: string) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
