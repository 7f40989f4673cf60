// The plugin socket's line protocol, between check_tcp_half_open --via
// (native/plugin/via.cc, the client) and serve (plugin-socket.ts). One request
// line per connection, answered by one line (or `wait`, then one line):
//
//   request   check HOST PORT DEADLINE_MS FAMILY      FAMILY 0 (any), 4 or 6
//   answers   verdict STATE REASON IP RTT_US TTL      the plugin prints the check's line from these
//             wait MS                                 learning: the verdict follows within MS
//             live TEXT                               no exact answer here: check live (TEXT says why)
//             refused TEXT                            UNKNOWN (exit 3): TEXT is the one line
//             error TEXT                              a request this serve does not understand
//
// STATE is open, closed or filtered (the verdict a live check would print),
// maint (serve's admin state) or pending (down, rise not reached, no failed
// check to show). RTT_US and TTL are -1 when unknown. Serve supplies the
// fields only; every status line is formatted by the plugin, in one place.
// Fields never contain spaces; TEXT is the rest of the line.

/** Longest request line, newline included. */
export const MAX_REQUEST = 512;
export const MAX_DEADLINE_MS = 3_600_000;

export interface PluginRequest {
  host: string;
  port: number;
  /** What is left of the check's -t when the request leaves, ms. */
  deadlineMs: number;
  family: 0 | 4 | 6;
}

export type VerdictState = 'open' | 'closed' | 'filtered' | 'maint' | 'pending';

export interface VerdictFields {
  state: VerdictState;
  reason: string;
  ip: string;
  rttUs: number;
  ttl: number;
}

/** Host names and address literals: no spaces, no control characters, at most 255 characters. */
const HOST_RE = /^[A-Za-z0-9._:%-]{1,255}$/;
const FIELD_RE = /^[A-Za-z0-9._:%-]+$/;

/** Parses one request line (without its newline); a string is the error to answer. */
export function parseRequest(line: string): PluginRequest | string {
  const t = line.endsWith('\r') ? line.slice(0, -1) : line;
  const w = t.split(' ');
  if (w[0] !== 'check') return `unknown request "${w[0].slice(0, 32)}": expected "check HOST PORT DEADLINE_MS FAMILY"`;
  if (w.length !== 5) return 'expected "check HOST PORT DEADLINE_MS FAMILY"';
  const [, host, port, deadline, family] = w;
  if (!HOST_RE.test(host)) return 'HOST: expected an address or host name';
  if (!/^[1-9]\d{0,4}$/.test(port) || Number(port) > 65535) return 'PORT: expected a number from 1 to 65535';
  if (!/^[1-9]\d{0,6}$/.test(deadline) || Number(deadline) > MAX_DEADLINE_MS) return `DEADLINE_MS: expected milliseconds from 1 to ${MAX_DEADLINE_MS}`;
  if (family !== '0' && family !== '4' && family !== '6') return 'FAMILY: expected 0, 4 or 6';
  return { host, port: Number(port), deadlineMs: Number(deadline), family: Number(family) as 0 | 4 | 6 };
}

export function formatRequest(r: PluginRequest): string {
  return `check ${r.host} ${r.port} ${r.deadlineMs} ${r.family}\n`;
}

const int = (n: number) => (Number.isInteger(n) && n >= -1 ? String(n) : '-1');

export function formatVerdict(v: VerdictFields): string {
  const field = (s: string) => (s && FIELD_RE.test(s) ? s : '-');
  return `verdict ${v.state} ${field(v.reason)} ${field(v.ip)} ${int(v.rttUs)} ${int(v.ttl)}\n`;
}

/** One line of free text: newlines and other control characters become spaces. */
const text = (s: string) => s.replace(/[\x00-\x1f\x7f]+/g, ' ').trim() || '-';

export const formatWait = (ms: number) => `wait ${Math.max(1, Math.ceil(ms))}\n`;
export const formatLive = (why: string) => `live ${text(why)}\n`;
export const formatRefused = (why: string) => `refused ${text(why)}\n`;
export const formatError = (why: string) => `error ${text(why)}\n`;

export type PluginAnswer =
  | ({ kind: 'verdict' } & VerdictFields)
  | { kind: 'wait'; ms: number }
  | { kind: 'live' | 'refused' | 'error'; text: string };

const STATES: readonly VerdictState[] = ['open', 'closed', 'filtered', 'maint', 'pending'];

/** Reads one answer line the way the plugin does (native/plugin/via.cc); null for anything else. */
export function parseAnswer(line: string): PluginAnswer | null {
  const sp = line.indexOf(' ');
  const verb = sp < 0 ? line : line.slice(0, sp);
  const rest = sp < 0 ? '' : line.slice(sp + 1);
  if (verb === 'live' || verb === 'refused' || verb === 'error') return rest ? { kind: verb, text: rest } : null;
  if (verb === 'wait') return /^[1-9]\d{0,9}$/.test(rest) ? { kind: 'wait', ms: Number(rest) } : null;
  if (verb !== 'verdict') return null;
  const w = rest.split(' ');
  if (w.length !== 5 || !STATES.includes(w[0] as VerdictState) || !w.slice(1, 3).every((f) => FIELD_RE.test(f))) return null;
  if (!w.slice(3).every((f) => /^(-1|0|[1-9]\d{0,11})$/.test(f))) return null;
  return { kind: 'verdict', state: w[0] as VerdictState, reason: w[1], ip: w[2], rttUs: Number(w[3]), ttl: Number(w[4]) };
}
