// Polling with a deadline, for code that waits on the outside world (a
// daemon's output, a fleet's state). Plain sleeps use node:timers/promises.
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls cond every `step` ms until it holds or `ms` have passed; returns its last value. */
export async function waitFor(cond: () => boolean, ms: number, step = 20): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(step);
  }
  return cond();
}
