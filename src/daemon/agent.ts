// HAProxy agent-check responder. HAProxy connects to `agent-port`, sends its
// `agent-send` string (here: the backend's name or address:port, ending in a
// newline) and reads one line: "up", "up 50%" (weight) or "down #reason".
import net from 'node:net';
import { Monitor } from './monitor';

export function agentReply(m: Monitor | null, key: string): string {
  if (!m) return 'down #halfopen starting\n';
  const b = m.find(key.trim());
  if (!b) return `down #unknown backend ${JSON.stringify(key.trim()).slice(1, -1)}\n`;
  if (b.state === 'up') return b.cfg.weight !== undefined ? `up ${b.cfg.weight}%\n` : 'up\n';
  if (b.healthState === 'up') return `down #stale: no check completed for ${Math.round((Date.now() - (b.last?.ts ?? b.born)) / 1000)} s\n`;
  const why = b.last ? `${b.last.state} ${b.last.reason}` : 'down';
  return `down #${why}\n`;
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
