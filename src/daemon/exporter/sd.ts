// GET /sd: serve's backends in Prometheus' http_sd format, so one scrape job
// (http_sd_configs pointing here, blackbox's relabelling to /probe) probes
// every backend serve knows. One target group per backend: its host:port as
// configured, its labels, the backend's name as `backend`, and what serve
// knows of it as __meta_halfopen_* labels (available while relabelling).
import type { Backend, Monitor } from '../monitor';

/** host:port as Prometheus' __address__ wants it: IPv6 literals in brackets. */
export function sdAddress(host: string, port: number): string {
  const h = host.replace(/^\[(.*)\]$/, '$1');
  return h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`;
}

export function sdGroup(b: Backend): { targets: string[]; labels: Record<string, string> } {
  return {
    targets: [sdAddress(b.cfg.host, b.cfg.port)],
    labels: {
      ...b.cfg.labels,
      backend: b.cfg.name,
      __meta_halfopen_backend: b.cfg.name,
      __meta_halfopen_address: b.addr === null ? '' : b.address,
      __meta_halfopen_port: String(b.cfg.port),
      __meta_halfopen_state: b.state,
    },
  };
}

/** The JSON in chunks (the caller yields between them). */
export function* sdChunks(m: Monitor): Generator<string> {
  const bs = m.list();
  let out = '[';
  for (let i = 0; i < bs.length; i++) {
    out += (i ? ',' : '') + JSON.stringify(sdGroup(bs[i]));
    if ((i + 1) % 500 === 0) { yield out; out = ''; }
  }
  yield out + ']';
}
