// Stopping a process a test, the demo or a bench started, by its PID: SIGTERM,
// then SIGKILL if it has not exited after `ms`. Resolves once it has exited.
import type { ChildProcess } from 'node:child_process';

export async function stopChild(c: ChildProcess | null | undefined, ms = 5000): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), ms);
  await exited;
  clearTimeout(t);
}
