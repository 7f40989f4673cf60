// HAProxy agent-check responder. HAProxy connects to `agent-port`, sends its
// `agent-send` string (here: the backend's name or address:port, ending in a
// newline) and reads one line: "up", "up 50%" (weight) or "down #reason".
import net from 'node:net';
import { Monitor } from './monitor';

/**
 * One agent reply. Words, per HAProxy's agent protocol: the operational state
 * (up/down), the administrative one (ready, drain, maint: HAProxy follows
 * each, and `ready` ends a drain or maintenance the agent started), the
 * weight as a percentage of the configured one while up (with `weight` set,
 * or during slow start), and a #comment saying why it is down.
 */
export function agentReply(m: Monitor | null, key: string): string {
  if (!m) return 'down #halfopen starting\n';
  const b = m.find(key.trim());
  if (!b) return `down #unknown backend ${JSON.stringify(key.trim()).slice(1, -1)}\n`;
  const now = Date.now();
  if (b.admin === 'maint') return 'maint #maintenance\n';
  if (b.state === 'up') {
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

export function createAgentServer(getMonitor: () => Monitor | null): net.Server {
  return net.createServer((sock) => {
    let buf = '';
    sock.setTimeout(5000, () => sock.destroy());
    const answer = () => {
      sock.end(agentReply(getMonitor(), buf.split('\n')[0]));
    };
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\n') || buf.length > 1024) answer();
    });
    sock.on('end', () => { if (!sock.writableEnded) answer(); });
    sock.on('error', () => sock.destroy());
  });
}
