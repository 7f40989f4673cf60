// State-change events: one NDJSON line each (file or stdout), and the
// on_change hook run with the event in its environment, bounded by a timeout
// and never awaited by the check loop.
import fs from 'node:fs';
import { spawn, ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { HalfopenError } from '../errors';
import { ChangeEvent } from './backend';

export class EventSink {
  private fd: number | null = null;
  private readonly hooks = new Set<ChildProcess>();

  constructor(private readonly target: string | undefined, private readonly hook: string | undefined, private readonly hookTimeoutMs: number,
    private readonly warn: (m: string) => void) {
    // The hook first: a refused one leaves no events file open.
    if (hook) {
      const problem = hookProblem(hook);
      if (problem) throw new HalfopenError('E_CONFIG', `hooks.on_change: ${problem}`);
    }
    if (target && target !== '-') {
      try {
        this.fd = fs.openSync(target, 'a');
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new HalfopenError('E_CONFIG', `cannot open the events file ${target}: ${e.code ?? e.message}`, { errno: e.errno, syscall: e.syscall });
      }
    }
  }

  emit(ev: ChangeEvent): void {
    const line = JSON.stringify(ev) + '\n';
    // Synchronous: an event is never lost on shutdown, and events are rare.
    if (this.fd !== null) fs.writeSync(this.fd, line);
    else if (this.target === '-') process.stdout.write(line);
    // Hooks follow changes (state and admin); failed checks (log_failures) only go to the file.
    if (this.hook && ev.event !== 'check') this.runHook(ev);
  }

  private runHook(ev: ChangeEvent): void {
    const env = {
      ...process.env,
      HALFOPEN_EVENT: JSON.stringify(ev), HALFOPEN_BACKEND: ev.backend, HALFOPEN_ADDRESS: ev.address, HALFOPEN_PORT: String(ev.port),
      HALFOPEN_FROM: ev.from, HALFOPEN_TO: ev.to, HALFOPEN_REASON: ev.reason, HALFOPEN_TIME: ev.time, HALFOPEN_KIND: ev.event,
    };
    const child = spawn('/bin/sh', ['-c', this.hook!], { env, stdio: 'ignore' });
    this.hooks.add(child);
    const timer = setTimeout(() => {
      this.warn(`hook for ${ev.backend} ran over ${this.hookTimeoutMs} ms: killed`);
      child.kill('SIGKILL');
    }, this.hookTimeoutMs);
    child.on('error', (e) => this.warn(`hook for ${ev.backend} failed to start: ${e.message}`));
    child.on('exit', (code) => {
      clearTimeout(timer);
      this.hooks.delete(child);
      if (code) this.warn(`hook for ${ev.backend} exited with ${code}`);
    });
  }

  /** Waits up to `ms` for running hooks, then closes the event file. */
  async close(ms = 2000): Promise<void> {
    const end = Date.now() + ms;
    while (this.hooks.size && Date.now() < end) await sleep(20);
    for (const h of this.hooks) h.kill('SIGKILL');
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** Words /bin/sh runs itself: a hook may start with one of them. */
const SH_BUILTINS = new Set([':', '.', '[', 'cd', 'command', 'echo', 'eval', 'exec', 'exit', 'export', 'false', 'printf', 'read', 'set', 'test', 'true', 'if', 'for', 'while', 'case', '{', '(']);

/**
 * Why the hook's command cannot run, or null: its first word (after any
 * VAR=value) must be a shell builtin, an executable file by path, or a
 * program on PATH. Found at start, not at the first state change.
 */
export function hookProblem(command: string): string | null {
  const words = command.trim().split(/\s+/);
  let i = 0;
  while (i < words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[i])) i++;
  const first = (words[i] ?? '').replace(/^['"]|['"]$/g, '');
  if (!first) return 'an empty command';
  if (SH_BUILTINS.has(first)) return null;
  const candidates = first.includes('/') ? [first] : (process.env.PATH ?? '/usr/bin:/bin').split(':').filter(Boolean).map((d) => `${d}/${first}`);
  for (const f of candidates) {
    try {
      if (!fs.statSync(f).isFile()) continue;
      fs.accessSync(f, fs.constants.X_OK);
      return null;
    } catch { /* next */ }
  }
  if (!first.includes('/')) return `"${first}" is not a shell builtin nor a program on PATH`;
  try {
    return fs.statSync(first).isFile() ? `${first} is not executable` : `${first} is not a file`;
  } catch (err) {
    return `${first}: ${(err as NodeJS.ErrnoException).code ?? err}`;
  }
}
