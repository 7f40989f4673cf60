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
import { native } from '../addon/addon';
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

/** The reply for backend b now (agentReply without the lookup). */
export function replyFor(b: Backend, now: number): string {
  if (b.admin === 'maint') return 'maint #maintenance\n';
  if (b.effectiveState(now) === 'up') {
    // With slow start the full weight is said too: HAProxy keeps the last one it heard.
    const weighted = b.admin === 'ready' && (b.cfg.weight !== undefined || b.cfg.slowstart > 0);
    return `up ${b.admin}${weighted ? ` ${b.weightNow(now)}%` : ''}\n`;
  }
  const reason = b.downReason(now);
  const why = reason === 'stale' ? `stale: no check completed for ${Math.round(b.checkAge(now) / 1000)} s`
    : reason === 'unresolved' ? `unresolved: ${b.unresolved || b.cfg.host}`
      : b.last ? `${b.last.state} ${b.last.reason}` : 'down';
  return `down ${b.admin} #${why}\n`;
}

/** Every key and its reply, as Monitor.find would pick the backend: names first, then the first backend of an address:port. */
export function replyTable(m: Monitor, now = Date.now()): Map<string, string> {
  const out = new Map<string, string>();
  const list = m.list();
  const replies = list.map((b) => replyFor(b, now));
  list.forEach((b, i) => out.set(b.cfg.name, replies[i]));
  list.forEach((b, i) => {
    if (b.addr === null) return;
    for (const key of [`${b.address}:${b.cfg.port}`, `[${b.address}]:${b.cfg.port}`]) if (!out.has(key)) out.set(key, replies[i]);
  });
  return out;
}

interface NativeResponder {
  update(keys: string[], replies: string[]): void;
  remove(keys: string[]): void;
  ready(): void;
  stats(): { accepted: number; answered: number; timedOut: number };
  close(): void;
}

/** The agent responder: listening from construction (E_CONFIG naming the address when it cannot), replies from the monitor once it exists. */
export class AgentServer {
  private readonly native: NativeResponder;
  private sent = new Map<string, string>();
  private watched: Monitor | null = null;
  private readonly timer: NodeJS.Timeout;
  private pending = false;
  private readySent = false;

  constructor(private readonly getMonitor: () => Monitor | null, where: { host: string; port: number }) {
    const Responder = (native as unknown as { AgentResponder: new (host: string, port: number) => NativeResponder }).AgentResponder;
    try {
      this.native = new Responder(where.host === 'localhost' ? '127.0.0.1' : where.host, where.port);
    } catch (err) {
      throw new HalfopenError('E_CONFIG', `cannot listen for the agent on ${where.host}:${where.port}: ${(err as Error).message}`);
    }
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    this.timer.unref();
  }

  /** Works the replies out again now (after a reload, say); changes reach the thread at once. */
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
    const next = replyTable(m, now);
    const keys: string[] = [], replies: string[] = [];
    for (const [k, r] of next) if (this.sent.get(k) !== r) { keys.push(k); replies.push(r); }
    const gone: string[] = [];
    for (const k of this.sent.keys()) if (!next.has(k)) gone.push(k);
    if (keys.length) this.native.update(keys, replies);
    if (gone.length) this.native.remove(gone);
    if (!this.readySent) { this.native.ready(); this.readySent = true; } // the table is whole: no more "starting"
    this.sent = next;
  }

  stats(): { accepted: number; answered: number; timedOut: number } { return this.native.stats(); }

  close(): void {
    clearInterval(this.timer);
    this.native.close();
  }
}
