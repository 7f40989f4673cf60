// HAProxy agent-check responder. HAProxy connects to `agent-port`, sends its
// `agent-send` string (here: the backend's name or address:port, ending in a
// newline) and reads one line: "up", "up 50%" (weight) or "down #reason".
//
// The connections themselves are served by the addon on a thread of its own
// (native/addon/agent.cc): at one connection per server per agent-inter,
// Node's sockets cost serve ~85 µs of CPU each (bench/agent-cost.ts). This
// side decides the replies and hands the thread a table of them (every key a
// backend answers to), refreshed when a state changes and every second
// (stale times and slow-start weights move with the clock).
import os from 'node:os';
import { native, NativeAgentResponder } from '../addon/addon';
import { HalfopenError } from '../errors';
import { Backend, Monitor } from './monitor';

export function agentReply(m: Monitor | null, key: string): string {
  if (!m) return 'down #halfopen starting\n';
  const b = m.find(key.trim());
  if (!b) return `down #unknown backend ${JSON.stringify(key.trim()).slice(1, -1)}\n`;
  return replyFor(b, Date.now());
}

/** How often every reply is worked out again (they move with the clock too). */
const REFRESH_MS = 1000;

/** The replies of an up backend without a weight to announce: the same strings every time, no allocation. */
const UP: Record<string, string> = { ready: 'up ready\n', drain: 'up drain\n' };

/** The reply for backend b now (agentReply without the lookup). */
export function replyFor(b: Backend, now: number): string {
  if (b.admin === 'maint') return 'maint #maintenance\n';
  if (b.effectiveState(now) === 'up') {
    // With slow start the full weight is said too: HAProxy keeps the last one it heard.
    const weighted = b.admin === 'ready' && (b.cfg.weight !== undefined || b.cfg.slowstart > 0);
    return weighted ? `up ready ${b.weightNow(now)}%\n` : UP[b.admin];
  }
  const reason = b.downReason(now);
  const why = reason === 'stale' ? `stale: no check completed for ${Math.round(b.checkAge(now) / 1000)} s`
    : reason === 'unresolved' ? `unresolved: ${b.unresolved || b.cfg.host}`
      : b.last ? `${b.last.state} ${b.last.reason}` : 'down';
  return `down ${b.admin} #${why}\n`;
}

/** The keys each backend answers to, as Monitor.find picks: names first, then the first backend of an address:port. */
export function agentKeys(list: readonly Backend[]): Map<Backend, string[]> {
  const taken = new Set<string>();
  const out = new Map<Backend, string[]>();
  for (const b of list) { out.set(b, [b.cfg.name]); taken.add(b.cfg.name); }
  for (const b of list) {
    if (b.addr === null) continue;
    for (const key of [`${b.address}:${b.cfg.port}`, `[${b.address}]:${b.cfg.port}`]) {
      if (taken.has(key)) continue;
      taken.add(key);
      out.get(b)!.push(key);
    }
  }
  return out;
}

/** The agent responder: listening from construction (E_CONFIG naming the address when it cannot), replies from the monitor once it exists. */
export class AgentServer {
  private readonly native: NativeAgentResponder;
  /** Per backend: the keys it answers to, and the reply the thread has. */
  private keys = new Map<Backend, string[]>();
  private sent = new Map<Backend, string>();
  private watched: Monitor | null = null;
  private readonly timer: NodeJS.Timeout;
  private pending = false;
  private readySent = false;

  constructor(private readonly getMonitor: () => Monitor | null, where: { host: string; port: number }) {
    try {
      this.native = new native.AgentResponder(where.host === 'localhost' ? '127.0.0.1' : where.host, where.port);
    } catch (err) {
      const e = err as HalfopenError;
      const code = Object.entries(os.constants.errno).find(([, v]) => v === e.errno)?.[0] ?? e.message;
      throw new HalfopenError('E_CONFIG', `cannot listen for the agent on ${where.host}:${where.port}: ${code}`, { errno: e.errno, syscall: e.syscall });
    }
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    this.timer.unref();
  }

  /**
   * Works the replies out again now. The keys are worked out only when the
   * backend set changed (start, reload, learning); otherwise each backend's
   * reply is compared with the one the thread has, and only changes cross.
   */
  refresh(now = Date.now()): void {
    const m = this.getMonitor();
    if (!m) return;
    if (this.watched !== m) {
      this.watched = m;
      // A state change is answered from the next turn of the event loop, not a second later.
      m.on('change', () => {
        if (this.pending) return;
        this.pending = true;
        setImmediate(() => { this.pending = false; this.refresh(); });
      });
    }
    const list = m.list();
    const same = list.length === this.keys.size && list.every((b) => this.keys.has(b));
    const keys: string[] = [], replies: string[] = [];
    if (!same) {
      this.keys = agentKeys(list);
      this.sent = new Map();
    }
    for (const b of list) {
      const r = replyFor(b, now);
      if (this.sent.get(b) === r) continue;
      this.sent.set(b, r);
      for (const k of this.keys.get(b)!) { keys.push(k); replies.push(r); }
    }
    if (!same || keys.length) this.native.update(keys, replies, !same);
    if (!this.readySent) { this.native.ready(); this.readySent = true; } // the table is whole: no more "starting"
  }

  stats(): { accepted: number; answered: number; timedOut: number } { return this.native.stats(); }

  close(): void {
    clearInterval(this.timer);
    this.native.close();
  }
}
