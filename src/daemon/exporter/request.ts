// A /probe request's parameters, as blackbox_exporter reads them: `target`
// (host:port, [v6]:port, or a host with the module's port), `module` (the
// default one when absent), `debug=true`, and the deadline: the module's
// timeout, capped by X-Prometheus-Scrape-Timeout-Seconds minus the offset.
// Pure functions, so the unit tests can hammer them.
import { parseAddress } from '../../targets/address';
import { isHostname } from '../../targets/target-set';
import { DEFAULT_MODULE, ExporterConfig, ModuleConfig } from './config';

export interface ProbeTarget {
  /** The host as given: an address literal (no brackets) or a host name (lower case, no trailing dot). */
  host: string;
  /** The address when host is a literal (IPv4-mapped IPv6 is IPv4), else null: a name to resolve. */
  addr: bigint | null;
  port: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const PORT = /^\d{1,5}$/;

function portOf(text: string): number | null {
  if (!PORT.test(text)) return null;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : null;
}

/** Parses a target; `defaultPort` (the module's `port`) serves a target given without one. */
export function parseTarget(text: string, defaultPort?: number): Parsed<ProbeTarget> {
  const t = text.trim();
  const bad = (why: string): Parsed<ProbeTarget> => ({ ok: false, error: `target ${JSON.stringify(text)}: ${why}` });
  const expected = 'expected host:port, [v6]:port, or a host with the module\'s port';
  if (!t) return bad(expected);
  let host: string;
  let portText: string | undefined;
  const br = /^\[([^\]]*)\](?::(.*))?$/.exec(t);
  if (br) {
    host = br[1];
    portText = br[2];
    if (parseAddress(host) === null) return bad('expected an IPv6 address inside [ ]');
  } else if (t.includes('[') || t.includes(']') || t.includes('/')) {
    return bad(expected);
  } else {
    const colons = t.split(':').length - 1;
    if (colons === 1) {
      const i = t.indexOf(':');
      host = t.slice(0, i);
      portText = t.slice(i + 1);
    } else if (colons > 1) {
      // A bare IPv6 literal: its port comes from the module.
      host = t;
      if (parseAddress(host) === null) return bad(expected);
    } else host = t;
  }
  let port: number | undefined;
  if (portText !== undefined) {
    const p = portOf(portText);
    if (p === null) return bad('expected a port from 1 to 65535 after the colon');
    port = p;
  } else if (defaultPort !== undefined) port = defaultPort;
  else return bad('no port, and the module has none (host:port, or set the module\'s port)');
  const addr = parseAddress(host);
  if (addr !== null) return { ok: true, value: { host, addr, port } };
  if (!isHostname(host)) return bad(`"${host}" is neither an address nor a host name`);
  return { ok: true, value: { host: host.replace(/\.$/, '').toLowerCase(), addr: null, port } };
}

/** Go's strconv.ParseFloat spellings that a scrape-timeout header plausibly holds. */
const FLOAT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * The probe's time limit in seconds, as blackbox_exporter's getTimeout
 * computes it: the scrape timeout from the header (120 s without one), minus
 * the offset; the module's timeout when that is shorter (or when the header
 * minus the offset is negative). A header that is not a number is an error.
 */
export function probeTimeoutSeconds(header: string | undefined, moduleTimeoutS: number, offsetS: number): Parsed<number> {
  let scrape = 0;
  if (header !== undefined && header !== '') {
    const h = header.trim();
    if (!FLOAT.test(h)) return { ok: false, error: `X-Prometheus-Scrape-Timeout-Seconds ${JSON.stringify(header)}: expected a number of seconds` };
    scrape = Number(h);
  }
  if (scrape === 0) scrape = 120;
  const max = scrape - offsetS;
  return { ok: true, value: (moduleTimeoutS < max && moduleTimeoutS > 0) || max < 0 ? moduleTimeoutS : max };
}

export interface ProbeRequest {
  target: ProbeTarget;
  /** The target parameter as given (the `instance` of the scrape). */
  targetText: string;
  moduleName: string;
  module: ModuleConfig;
  timeoutS: number;
  debug: boolean;
}

/**
 * Everything a /probe request asks, or the 400 it earns: an unknown module,
 * a missing or malformed target, a scrape-timeout header that is not a
 * number. One line each, as blackbox answers.
 */
export function parseProbeRequest(params: URLSearchParams, scrapeTimeoutHeader: string | undefined, cfg: ExporterConfig): Parsed<ProbeRequest> {
  const moduleName = params.get('module') || DEFAULT_MODULE;
  const module = Object.prototype.hasOwnProperty.call(cfg.modules, moduleName) ? cfg.modules[moduleName] : undefined;
  if (!module) return { ok: false, error: `Unknown module ${JSON.stringify(moduleName)}` };
  const timeout = probeTimeoutSeconds(scrapeTimeoutHeader, module.timeoutMs / 1000, cfg.timeoutOffsetMs / 1000);
  if (!timeout.ok) return timeout;
  const targetText = params.get('target') ?? '';
  if (!targetText) return { ok: false, error: 'Target parameter is missing' };
  const target = parseTarget(targetText, module.port);
  if (!target.ok) return target;
  return { ok: true, value: { target: target.value, targetText, moduleName, module, timeoutS: timeout.value, debug: params.get('debug') === 'true' } };
}
