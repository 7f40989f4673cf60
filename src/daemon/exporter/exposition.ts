// What one /probe answers: Prometheus text (format 0.0.4) with
// blackbox_exporter's metric names, so its dashboards and alerts carry over,
// plus what only a half-open probe knows (the verdict's state and reason,
// the RTT, the reply's TTL); and, for debug=true, blackbox's plain-text
// debug page (the probe's log, the metrics, the module).
import yaml from 'js-yaml';
import type { ModuleConfig } from './config';

export interface ProbeOutcome {
  success: boolean;
  durationS: number;
  dnsLookupS: number;
  /** 4 or 6 once an address was chosen, else 0 (as blackbox leaves it). */
  ipProtocol: 0 | 4 | 6;
  /** FNV-1a of the address's 16 bytes, else 0. */
  ipAddrHash: number;
  /** The half-open verdict, when a SYN went out. */
  result?: { state: string; reason: string; rttS: number | null; ttl: number | null };
}

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
/** Seconds to the nanosecond (what the clocks give), without float noise like 0.000029999999999999997. */
const num = (x: number) => String(Math.round(x * 1e9) / 1e9);
const family = (name: string, help: string, lines: string) => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${lines}`;

/** FNV-1a, 32 bits, over bytes: blackbox's ipHash (net.IP in its 16-byte form). */
export function fnv1a32(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The exposition, families sorted by name as client_golang gathers them. */
export function renderProbe(o: ProbeOutcome): string {
  const out: string[] = [];
  out.push(family('probe_dns_lookup_time_seconds', 'Returns the time taken for probe dns lookup in seconds', `probe_dns_lookup_time_seconds ${num(o.dnsLookupS)}\n`));
  out.push(family('probe_duration_seconds', 'Returns how long the probe took to complete in seconds', `probe_duration_seconds ${num(o.durationS)}\n`));
  out.push(family('probe_ip_addr_hash', 'Specifies the hash of IP address. It\'s useful to detect if the IP address changes.', `probe_ip_addr_hash ${num(o.ipAddrHash)}\n`));
  out.push(family('probe_ip_protocol', 'Specifies whether probe ip protocol is IP4 or IP6', `probe_ip_protocol ${o.ipProtocol}\n`));
  out.push(family('probe_success', 'Displays whether or not the probe was a success', `probe_success ${o.success ? 1 : 0}\n`));
  const r = o.result;
  if (r) {
    out.push(family('probe_tcp_half_open_result', 'The half-open verdict as labels: state (open, closed, filtered, unreachable) and reason (syn-ack, rst, no-response, icmp-TYPE-CODE); always 1.',
      `probe_tcp_half_open_result{state="${esc(r.state)}",reason="${esc(r.reason)}"} 1\n`));
    if (r.rttS !== null) out.push(family('probe_tcp_half_open_rtt_seconds', 'Time from the SYN to its answer (SYN+ACK, RST or ICMP error).', `probe_tcp_half_open_rtt_seconds ${num(r.rttS)}\n`));
    if (r.ttl !== null) out.push(family('probe_tcp_half_open_ttl', 'IP TTL (IPv6 hop limit) of the answer as it arrived.', `probe_tcp_half_open_ttl ${r.ttl}\n`));
  }
  return out.join('');
}

/** One logfmt line, as blackbox's probe logger writes them. */
export function logLine(ts: Date, level: string, module: string, target: string, msg: string, kv: Record<string, string | number> = {}): string {
  const q = (v: string | number) => (typeof v === 'number' ? String(Math.round(v * 1e9) / 1e9) : /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v));
  const extra = Object.entries(kv).map(([k, v]) => ` ${k}=${q(v)}`).join('');
  return `ts=${ts.toISOString()} caller=exporter module=${q(module)} target=${q(target)} level=${level} msg=${q(msg)}${extra}`;
}

/** The module as the config spells it. */
export function moduleYaml(m: ModuleConfig): string {
  const o: Record<string, unknown> = {
    prober: m.prober, timeout: `${m.timeoutMs / 1000}s`, preferred_ip_protocol: m.preferredIpProtocol, ip_protocol_fallback: m.ipProtocolFallback,
  };
  if (m.source) o.source = m.source.length === 1 ? m.source[0] : m.source;
  if (m.mark !== undefined) o.mark = `0x${m.mark.toString(16)}`;
  if (m.port !== undefined) o.port = m.port;
  return yaml.dump(o);
}

/** blackbox's debug page: the probe's log, the metrics it would have returned, the module. */
export function debugOutput(log: string[], metrics: string, module: ModuleConfig): string {
  return `Logs for the probe:\n${log.map((l) => `${l}\n`).join('')}\n\n\nMetrics that would have been returned:\n${metrics}\n\n\nModule configuration:\n${moduleYaml(module)}`;
}
