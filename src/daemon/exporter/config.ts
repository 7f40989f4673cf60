// The `exporter:` section of the serve config: /probe's allow list, limits and
// modules, blackbox_exporter style. Validated field by field like the rest of
// the config (one line naming the file, the field and what was expected), and
// kept as plain data: a reload parses it on a worker thread.
import { HalfopenError } from '../../errors';
import { Ctx, known, obj, parseDuration } from '../config-fields';
import { isV4, parseAddress } from '../../targets/address';
import { AllowList } from '../allow-list';

/** The one prober; `prober:` may name it, as blackbox modules name theirs. */
export const PROBERS = ['tcp_half_open'] as const;
export const DEFAULT_MODULE = 'tcp_half_open';

export interface ModuleConfig {
  prober: typeof PROBERS[number];
  /** The probe's own limit, ms; the scrape's timeout (minus the offset) caps it. */
  timeoutMs: number;
  preferredIpProtocol: 'ip4' | 'ip6';
  /** A name with no address of the preferred family is probed at one of the other. */
  ipProtocolFallback: boolean;
  /** Source addresses of this host, at most one per family. */
  source?: string[];
  /** SO_MARK of the SYNs. */
  mark?: number;
  /** Port for a target given without one. */
  port?: number;
}

export interface ExporterConfig {
  /** Entries of exporter.allow (AllowList.parse has accepted them). */
  allow: string[];
  modules: Record<string, ModuleConfig>;
  /** /probe requests at once; also the probe-table slots kept for them. */
  maxConcurrent: number;
  /** /probe requests per second (a token bucket of one second's worth). */
  maxPerSecond: number;
  /** Subtracted from X-Prometheus-Scrape-Timeout-Seconds, ms (blackbox's --timeout-offset). */
  timeoutOffsetMs: number;
  /** How often name entries of the allow list are looked up again, ms. */
  allowRefreshMs: number;
}

/** The module every exporter has unless the config redefines it (blackbox's defaults, but a 5 s limit). */
export const MODULE_DEFAULTS: ModuleConfig = { prober: 'tcp_half_open', timeoutMs: 5000, preferredIpProtocol: 'ip6', ipProtocolFallback: true };

const TOP_KEYS = ['allow', 'modules', 'max_concurrent', 'max_per_second', 'timeout_offset', 'allow_refresh'] as const;
const MODULE_KEYS = ['prober', 'timeout', 'preferred_ip_protocol', 'ip_protocol_fallback', 'source', 'mark', 'port'] as const;

function whole(f: Ctx, path: string, v: unknown, min: number, max: number): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
  return f.fail(path, `a whole number from ${min} to ${max}`, v);
}

function parseModule(f: Ctx, path: string, raw: unknown): ModuleConfig {
  const m = obj(f, path, raw);
  known(f, path, m, MODULE_KEYS);
  const out: ModuleConfig = { ...MODULE_DEFAULTS };
  if (m.prober !== undefined && !(PROBERS as readonly unknown[]).includes(m.prober)) f.fail(`${path}.prober`, `"${PROBERS.join('", "')}"`, m.prober);
  if (m.timeout !== undefined) {
    out.timeoutMs = parseDuration(m.timeout) ?? f.fail(`${path}.timeout`, 'a duration like 5s or 500ms', m.timeout);
  }
  if (m.preferred_ip_protocol !== undefined) {
    if (m.preferred_ip_protocol !== 'ip4' && m.preferred_ip_protocol !== 'ip6') f.fail(`${path}.preferred_ip_protocol`, '"ip4" or "ip6"', m.preferred_ip_protocol);
    out.preferredIpProtocol = m.preferred_ip_protocol;
  }
  if (m.ip_protocol_fallback !== undefined) {
    if (typeof m.ip_protocol_fallback !== 'boolean') f.fail(`${path}.ip_protocol_fallback`, 'true or false', m.ip_protocol_fallback);
    out.ipProtocolFallback = m.ip_protocol_fallback;
  }
  if (m.source !== undefined) {
    const list = Array.isArray(m.source) ? m.source : [m.source];
    const fams = new Set<boolean>();
    out.source = list.map((s) => {
      const text = typeof s === 'string' ? s.trim().replace(/^\[(.*)\]$/, '$1') : '';
      const a = parseAddress(text);
      if (a === null || list.length > 2) return f.fail(`${path}.source`, 'an address of this host, or a list of one IPv4 and one IPv6 address', m.source);
      if (fams.has(isV4(a))) f.fail(`${path}.source`, 'at most one address per family', m.source);
      fams.add(isV4(a));
      return text;
    });
  }
  if (m.mark !== undefined) {
    const v = m.mark;
    const n = typeof v === 'string' && /^(0x[0-9a-f]{1,8}|\d{1,10})$/i.test(v.trim()) ? Number(v.trim()) : v;
    if (!(typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff)) f.fail(`${path}.mark`, 'a mark from 0 to 0xffffffff (decimal or 0x hex)', v);
    out.mark = n as number;
  }
  if (m.port !== undefined) out.port = whole(f, `${path}.port`, m.port, 1, 65535);
  return out;
}

/**
 * Parses `exporter:` (undefined when absent). /probe is off without an
 * allow list, so a section without `allow` is an error, not a silent no-op.
 */
export function parseExporterConfig(raw: unknown, file: string): ExporterConfig | undefined {
  if (raw === undefined || raw === null) return undefined;
  const f = new Ctx(file);
  const e = obj(f, 'exporter', raw);
  known(f, 'exporter', e, TOP_KEYS);
  if (e.allow === undefined) f.fail('exporter.allow', 'a list of addresses, CIDRs, ranges or host names that /probe may probe', undefined);
  try {
    AllowList.parse(e.allow, 'exporter.allow');
  } catch (err) {
    throw new HalfopenError('E_CONFIG', `${file}: ${(err as Error).message}`);
  }
  const allow = (e.allow as string[]).map((s) => s.trim());
  if (!allow.length) f.fail('exporter.allow', 'at least one entry (leave exporter out to keep /probe off)', e.allow);
  const modules: Record<string, ModuleConfig> = { [DEFAULT_MODULE]: { ...MODULE_DEFAULTS } };
  for (const [name, m] of Object.entries(obj(f, 'exporter.modules', e.modules))) {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) f.fail('exporter.modules', 'module names of letters, digits and _.-', name);
    modules[name] = parseModule(f, `exporter.modules.${name}`, m);
  }
  const offset = e.timeout_offset === undefined ? 500 : e.timeout_offset === 0 || e.timeout_offset === '0' ? 0
    : parseDuration(e.timeout_offset) ?? f.fail('exporter.timeout_offset', 'a duration like 0.5s or 500ms', e.timeout_offset);
  const refresh = e.allow_refresh === undefined ? 30_000 : parseDuration(e.allow_refresh) ?? f.fail('exporter.allow_refresh', 'a duration like 30s', e.allow_refresh);
  return {
    allow,
    modules,
    maxConcurrent: e.max_concurrent === undefined ? 100 : whole(f, 'exporter.max_concurrent', e.max_concurrent, 1, 10_000),
    maxPerSecond: e.max_per_second === undefined ? 200 : whole(f, 'exporter.max_per_second', e.max_per_second, 1, 1_000_000),
    timeoutOffsetMs: offset,
    allowRefreshMs: refresh,
  };
}
