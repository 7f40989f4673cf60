// systemd integration of `halfopen serve` (Type=notify, WatchdogSec= in
// deploy/systemd/halfopen.service): READY=1 once checks run and the listeners
// are up, STOPPING=1 on shutdown, and WATCHDOG=1 pings while the scheduler is
// healthy. A daemon whose event loop is stuck sends no ping because the timer
// cannot fire; one whose scheduler has fallen behind sends none because
// isHealthy() says no. Either way systemd kills it after WatchdogSec and
// Restart=on-failure starts it again. Outside systemd (no NOTIFY_SOCKET)
// every call is a no-op.
export type NotifyFn = (socketPath: string, state: string) => number;

export interface Watchdog {
  /** The ping period in ms, or null when systemd asked for no watchdog. */
  readonly intervalMs: number | null;
  /** Tells systemd the daemon stops (STOPPING=1) and ends the pings. */
  stop(): void;
}

const defaultNotify: NotifyFn = (socketPath, state) =>
  (require('../addon/addon') as typeof import('../addon/addon')).native.notify(socketPath, state);

/**
 * Sends READY=1 and starts pinging at a third of WATCHDOG_USEC (systemd's
 * advice is half; a third leaves room for a late timer). The variables are
 * removed from `env`, as sd_notify's unset_environment does, so hooks and
 * other children neither inherit nor misuse them.
 */
export function startWatchdog(isHealthy: () => boolean, opts: { env?: NodeJS.ProcessEnv; notify?: NotifyFn; warn?: (m: string) => void } = {}): Watchdog {
  const env = opts.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  const usec = Number(env.WATCHDOG_USEC);
  const pid = env.WATCHDOG_PID;
  delete env.NOTIFY_SOCKET;
  delete env.WATCHDOG_USEC;
  delete env.WATCHDOG_PID;
  if (!socket) return { intervalMs: null, stop() {} };

  const notify = opts.notify ?? defaultNotify;
  let warned = false;
  const send = (state: string) => {
    const err = notify(socket, state);
    // Said once: a socket that fails keeps failing, and the journal needs one line, not one per ping.
    if (err && !warned) { warned = true; opts.warn?.(`cannot notify systemd at ${socket} (${state.split('=')[0]}): errno ${err}`); }
  };
  send('READY=1');

  const mine = pid === undefined || Number(pid) === process.pid;
  const intervalMs = mine && Number.isFinite(usec) && usec > 0 ? Math.max(1, Math.floor(usec / 3000)) : null;
  let unhealthy = false;
  const timer = intervalMs === null ? null : setInterval(() => {
    if (isHealthy()) {
      if (unhealthy) { unhealthy = false; send('STATUS=checking'); }
      send('WATCHDOG=1');
    } else if (!unhealthy) {
      unhealthy = true;
      send('STATUS=scheduler unhealthy: withholding watchdog pings');
    }
  }, intervalMs);
  timer?.unref();
  return {
    intervalMs,
    stop() {
      if (timer) clearInterval(timer);
      send('STOPPING=1');
    },
  };
}
