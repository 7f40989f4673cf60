// `halfopen serve` configuration: YAML, validated field by field. Every error
// names the file, the field path and what was expected.
import fs from 'node:fs';
import yaml from 'js-yaml';
import { HalfopenError } from '../errors';
import { hostPort, isV4, parseAddress } from '../targets/address';
import { isPort, parsePortNumber, parsePortRange } from '../targets/ports';
import { PushConfig, discovers, parsePush } from './push/config';
import { ExporterConfig, parseExporterConfig } from './exporter/config';
import { PluginConfig, parsePluginConfig } from './plugin-config';
import { Ctx, duration, known, obj } from './config-fields';

export interface BackendConfig {
  name: string;
  host: string;
  port: number;
  weight?: number;
  labels: Record<string, string>;
  interval: number;
  timeout: number;
  rise: number;
  fall: number;
  fastinter: number;
  downinter: number;
  /** Fraction of the interval (0..0.5) by which each check time is moved at random. */
  jitter: number;
  initial: 'up' | 'down';
  /** After coming up, the agent weight ramps from 10 % to full over this many ms (0: off). */
  slowstart: number;
  /** Every failed check is an event, not only transitions. */
  logFailures: boolean;
  /** A hostname is looked up again this often, ms (sooner when its record's TTL is shorter). */
  resolveInterval: number;
  /** Source address of this host for the backend's SYNs (else the route's). */
  source?: string;
  /** SO_MARK of the backend's SYNs, for netfilter and policy routing (else none). */
  mark?: number;
}

export interface ServeConfig {
  backends: BackendConfig[];
  listen: { http?: { host: string; port: number }; agent?: { host: string; port: number } };
  hooks: { onChange?: string; timeout: number };
  events?: string; // file path, or '-' for stdout
  /** Several backends may check the same address:port (the agent answers for the first). */
  allowDuplicates: boolean;
  /** Where states, counters and admin states survive restarts. */
  stateFile?: string;
  /** The admin API (PUT /backends/NAME/admin) exists only with a token file. */
  admin: { tokenFile?: string };
  probe: {
    interface?: string; sourcePorts: { lo: number; hi: number }; senders: number; rate: number;
    xdpMode: 'auto' | 'native' | 'generic'; rst: 'auto' | 'xdp' | 'kernel';
    /** auto: XDP when the interface's XDP hook is free, else tc ingress. */
    hook: 'auto' | 'xdp' | 'tc';
  };
  /** Balancers driven on every change (src/daemon/push/config.ts). */
  push: PushConfig;
  /** A backend with the defaults' timings, for backends discovered from a balancer. */
  template: Omit<BackendConfig, 'name' | 'host' | 'port'>;
  /** /probe (blackbox_exporter style); absent: /probe answers 404. */
  exporter?: ExporterConfig;
  /** `listen.plugin` and `plugin.*`: check_tcp_half_open --via (src/daemon/plugin-config.ts). */
  plugin: PluginConfig;
}

const TIMING_KEYS = ['interval', 'timeout', 'rise', 'fall', 'fastinter', 'downinter', 'jitter', 'initial', 'slowstart', 'log_failures', 'resolve_interval'] as const;
const DEFAULTS = { interval: 2000, timeout: 1000, rise: 2, fall: 3, jitter: 0.1, initial: 'up' as const, slowstart: 0, logFailures: false, resolveInterval: 30_000 };

/** One of `choices` (the first when absent). */
function oneOf<T extends string>(c: Ctx, path: string, v: unknown, choices: readonly T[]): T {
  if (v === undefined) return choices[0];
  if (!choices.includes(v as T)) c.fail(path, choices.map((x) => `"${x}"`).join(', ').replace(/, ([^,]*)$/, ' or $1'), v);
  return v as T;
}

function int(c: Ctx, path: string, v: unknown, min: number, max: number): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
  return c.fail(path, `a whole number from ${min} to ${max}`, v);
}

function listen(c: Ctx, path: string, v: unknown): { host: string; port: number } {
  // "9100", ":9100", "127.0.0.1:9100", "[::1]:9100" or a number
  const s = typeof v === 'number' ? String(v) : typeof v === 'string' ? v : '';
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d+)$/.exec(s.trim());
  const port = m ? parsePortNumber(m[3]) : null;
  if (!m || port === null) return c.fail(path, 'a listen address like 127.0.0.1:9100, [::1]:9100 or 9100', v);
  const host = m[1] ?? (m[2] || '127.0.0.1');
  if (m[1] !== undefined || m[2]) {
    if (parseAddress(host) === null && host !== 'localhost') return c.fail(path, 'an IP address to listen on', host);
  }
  return { host, port };
}

function timing(c: Ctx, path: string, raw: Record<string, unknown>, base: Partial<BackendConfig>): Partial<BackendConfig> {
  const out: Partial<BackendConfig> = { ...base };
  for (const k of TIMING_KEYS) {
    if (raw[k] === undefined) continue;
    const p = `${path}${path ? '.' : ''}${k}`;
    if (k === 'rise' || k === 'fall') out[k] = int(c, p, raw[k], 1, 1000);
    else if (k === 'jitter') {
      const v = raw[k];
      const n = typeof v === 'string' && /^\d+(\.\d+)?%$/.test(v) ? Number(v.slice(0, -1)) / 100 : v;
      // At most half the interval: a check is never due right after the previous one.
      if (typeof n !== 'number' || !(n >= 0 && n <= 0.5)) c.fail(p, 'a fraction from 0 to 0.5 or a percentage up to 50%', v);
      out.jitter = n as number;
    } else if (k === 'initial') out.initial = oneOf(c, p, raw[k], ['up', 'down'] as const);
    else if (k === 'log_failures') {
      if (typeof raw[k] !== 'boolean') c.fail(p, 'true or false', raw[k]);
      out.logFailures = raw[k] as boolean;
    } else if (k === 'slowstart') out.slowstart = raw[k] === 0 || raw[k] === '0' ? 0 : duration(c, p, raw[k]);
    else if (k === 'resolve_interval') out.resolveInterval = duration(c, p, raw[k]);
    else out[k] = duration(c, p, raw[k]);
  }
  return out;
}

// ── Per-backend `source` and `mark` (also in `defaults`): how a backend's SYNs leave.
const ROUTE_KEYS = ['source', 'mark'] as const;

/** `source`: an address, or a list of at most one IPv4 and one IPv6 address. */
function sources(c: Ctx, path: string, v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  const list = Array.isArray(v) ? v : [v];
  const fams = new Set<boolean>();
  return list.map((s) => {
    const a = typeof s === 'string' ? parseAddress(s.replace(/^\[(.*)\]$/, '$1')) : null;
    if (a === null || list.length > 2) return c.fail(path, 'an IP address of this host, or a list of one IPv4 and one IPv6 address', v);
    const v4 = isV4(a);
    if (fams.has(v4)) c.fail(path, 'at most one address per family', v);
    fams.add(v4);
    return (s as string).replace(/^\[(.*)\]$/, '$1');
  });
}

/** `mark`: 0..0xffffffff, decimal or 0x hex. */
function mark(c: Ctx, path: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^(0x[0-9a-f]{1,8}|\d{1,10})$/i.test(v.trim()) ? Number(v.trim()) : v;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff) return n;
  return c.fail(path, 'a mark from 0 to 0xffffffff (decimal or 0x hex)', v);
}

/**
 * The backend's own source and mark, else the defaults'. Of a list, the
 * address of the host's family; a list of two needs an address host.
 * `host`: the backend's host as an address (null: a hostname). Sets them on `out`.
 */
function route(c: Ctx, p: string, b: Record<string, unknown>, host: bigint | null, defaults: { source?: string[]; mark?: number }, out: BackendConfig): void {
  if (b.source === undefined && b.mark === undefined && defaults.source === undefined && defaults.mark === undefined) return;
  const own = sources(c, `${p}.source`, b.source);
  const list = own ?? defaults.source;
  const m = b.mark === undefined ? defaults.mark : mark(c, `${p}.mark`, b.mark);
  let source: string | undefined;
  if (list && host === null) {
    if (list.length > 1) c.fail(`${p}.source`, 'one address for a backend given by hostname', list);
    source = list[0];
  } else if (list && host !== null) {
    source = list.find((s) => isV4(parseAddress(s)!) === isV4(host));
    if (source === undefined && own) c.fail(`${p}.source`, `an address of the same family as ${b.host}`, b.source);
  }
  if (source !== undefined) out.source = source;
  if (m !== undefined) out.mark = m;
}

/**
 * A JSON document as YAML reads it, by JSON.parse (about 4 times faster than
 * js-yaml at 100,000 backends); undefined when the text is not JSON or when
 * YAML could read it otherwise: a key given twice (YAML refuses it, JSON
 * keeps the last), -0 and numbers out of range (YAML reads "-0" as 0 and
 * "1e400" as a string). Then js-yaml reads it, with its own errors.
 */
export function parseJsonAsYaml(text: string): unknown {
  let i = 0;
  while (i < text.length && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 10 || text.charCodeAt(i) === 13)) i++;
  if (text.charCodeAt(i) !== 123) return undefined; // a mapping: what a config is
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  const keys = documentKeys(doc);
  return keys >= 0 && keys === textKeys(text) ? doc : undefined;
}

/** Keys of every mapping in a parsed JSON document; -1 when a number would read otherwise in YAML. */
function documentKeys(v: unknown): number {
  if (typeof v === 'number') return Number.isFinite(v) && !Object.is(v, -0) ? 0 : -1;
  if (typeof v !== 'object' || v === null) return 0;
  let n = 0;
  if (Array.isArray(v)) {
    for (const x of v) { const k = documentKeys(x); if (k < 0) return -1; n += k; }
    return n;
  }
  for (const k of Object.keys(v)) { const m = documentKeys((v as Record<string, unknown>)[k]); if (m < 0) return -1; n += m + 1; }
  return n;
}

/** Keys in a valid JSON text: strings followed by a colon (duplicates counted, unlike in the parsed document). */
function textKeys(text: string): number {
  let n = 0;
  for (let i = text.indexOf('"'); i !== -1;) {
    let j = i;
    for (;;) {
      j = text.indexOf('"', j + 1);
      let bs = 0;
      while (text.charCodeAt(j - 1 - bs) === 92) bs++;
      if (bs % 2 === 0) break; // not escaped
    }
    let k = j + 1;
    for (let c = text.charCodeAt(k); c === 32 || c === 9 || c === 10 || c === 13; c = text.charCodeAt(++k));
    if (text.charCodeAt(k) === 58) n++;
    i = text.indexOf('"', k);
  }
  return n;
}

/**
 * Where the backends of a config go one by one as they are validated,
 * instead of into its list (then empty): i of n, in the file's order.
 */
export type BackendSink = (b: BackendConfig, i: number, n: number) => void;

/** A config's text as a document: JSON when it reads the same as YAML, else YAML. */
function parseDocument(text: string, file: string): unknown {
  const doc = parseJsonAsYaml(text);
  if (doc !== undefined) return doc;
  try {
    // js-yaml: a 10,000-backend file parses in ~70 ms and ~20 MB, a fifth of a document-model parser.
    return yaml.load(text, { schema: yaml.CORE_SCHEMA });
  } catch (err) {
    throw new HalfopenError('E_CONFIG', `${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** `each`: see BackendSink. */
export function parseConfig(text: string, file = 'config', each?: BackendSink): ServeConfig {
  return configOf(parseDocument(text, file), file, each);
}

/** A parsed document as a config, validated. */
function configOf(doc: unknown, file: string, each?: BackendSink): ServeConfig {
  const c = new Ctx(file);
  const root = obj(c, '(top level)', doc);
  known(c, '', root, ['backends', 'defaults', 'listen', 'hooks', 'events', 'probe', 'allow_duplicates', 'state_file', 'admin', 'push', 'exporter', 'plugin']);
  const push = parsePush(root.push, root.backends, file);
  const exporter = parseExporterConfig(root.exporter, file);
  if (root.state_file !== undefined && (typeof root.state_file !== 'string' || !root.state_file)) c.fail('state_file', 'a file path', root.state_file);
  const admin = obj(c, 'admin', root.admin);
  known(c, 'admin', admin, ['token_file']);
  if (admin.token_file !== undefined && (typeof admin.token_file !== 'string' || !admin.token_file)) c.fail('admin.token_file', 'a file path', admin.token_file);
  if (root.allow_duplicates !== undefined && typeof root.allow_duplicates !== 'boolean') c.fail('allow_duplicates', 'true or false', root.allow_duplicates);
  const defaults = obj(c, 'defaults', root.defaults);
  known(c, 'defaults', defaults, [...TIMING_KEYS, ...ROUTE_KEYS]);
  const base = timing(c, 'defaults', defaults, DEFAULTS);
  const baseRoute = { source: sources(c, 'defaults.source', defaults.source), mark: mark(c, 'defaults.mark', defaults.mark) };

  // Backends may be left out when a balancer lists them (push.nftlb discover) or serve is an exporter only (/probe).
  const plugin = parsePluginConfig(root, obj(c, 'listen', root.listen), base, (p, e, g) => c.fail(p, e, g), (p, v) => duration(c, p, v));
  // ... or serve learns them from check_tcp_half_open --via (plugin.learn).
  if ((discovers(push) || exporter || plugin.learn) && (root.backends === undefined || root.backends === null)) root.backends = [];
  if (!Array.isArray(root.backends) || (root.backends.length === 0 && !discovers(push) && !exporter && !plugin.learn)) c.fail('backends', 'a non-empty list of backends (or an exporter section)', root.backends);
  const backends = backendList(c, root.backends as unknown[], base, baseRoute, root.allow_duplicates === true, each);

  const l = obj(c, 'listen', root.listen);
  known(c, 'listen', l, ['http', 'agent', 'plugin']);
  if (exporter && l.http === undefined) c.fail('listen.http', 'an HTTP listen address: /probe (exporter) is served there', undefined);
  const hooks = obj(c, 'hooks', root.hooks);
  known(c, 'hooks', hooks, ['on_change', 'timeout']);
  if (hooks.on_change !== undefined && (typeof hooks.on_change !== 'string' || !hooks.on_change)) c.fail('hooks.on_change', 'a command line', hooks.on_change);
  if (root.events !== undefined && (typeof root.events !== 'string' || !root.events)) c.fail('events', 'a file path, or "-" for stdout', root.events);
  return {
    backends,
    listen: { http: l.http === undefined ? undefined : listen(c, 'listen.http', l.http), agent: l.agent === undefined ? undefined : listen(c, 'listen.agent', l.agent) },
    hooks: { onChange: hooks.on_change as string | undefined, timeout: hooks.timeout === undefined ? 10_000 : duration(c, 'hooks.timeout', hooks.timeout) },
    events: root.events as string | undefined,
    allowDuplicates: root.allow_duplicates === true,
    stateFile: root.state_file as string | undefined,
    admin: { tokenFile: admin.token_file as string | undefined },
    probe: probeSection(c, root.probe),
    push,
    template: { labels: {}, interval: base.interval!, timeout: base.timeout!, rise: base.rise!, fall: base.fall!, jitter: base.jitter!, initial: base.initial!,
      fastinter: base.fastinter ?? base.interval!, downinter: base.downinter ?? base.interval!, slowstart: base.slowstart!, logFailures: base.logFailures!,
      resolveInterval: base.resolveInterval!, ...(baseRoute.mark !== undefined ? { mark: baseRoute.mark } : {}) },
    exporter,
    plugin,
  };
}

/**
 * The `backends` list: each entry validated with the defaults applied, names
 * unique, and one host:port checked once unless duplicates are allowed. With
 * `each`, every backend goes there and its entry in the parsed document is
 * let go as it is read (the list comes back empty), so what stays live is
 * what the sink keeps.
 */
function backendList(c: Ctx, list: unknown[], base: Partial<BackendConfig>, baseRoute: { source?: string[]; mark?: number }, allowDuplicates: boolean, each?: BackendSink): BackendConfig[] {
  const names = new Set<string>();
  const targets = new Map<string | bigint, string>();
  const n = list.length;
  const out: BackendConfig[] = each ? [] : new Array(n);
  for (let i = 0; i < n; i++) {
    const b = backend(c, `backends[${i}]`, list[i], base, baseRoute, allowDuplicates, names, targets);
    if (!each) { out[i] = b; continue; }
    list[i] = undefined;
    each(b, i, n);
  }
  return out;
}

/** The labels of a backend without any (frozen: shared by all of them). */
const NO_LABELS: Record<string, string> = Object.freeze({});

const BACKEND_KEYS: ReadonlySet<string> = new Set(['name', 'host', 'port', 'weight', 'labels', 'server', ...TIMING_KEYS, ...ROUTE_KEYS]);
const NAME = /^[A-Za-z0-9_.:\-[\]/]+$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const unbracket = (h: string) => (h.charCodeAt(0) === 91 ? h.replace(/^\[(.*)\]$/, '$1') : h);

/** One entry of `backends`, checked in the order its errors are reported. */
function backend(c: Ctx, p: string, raw: unknown, base: Partial<BackendConfig>, baseRoute: { source?: string[]; mark?: number }, allowDuplicates: boolean,
  names: Set<string>, targets: Map<string | bigint, string>): BackendConfig {
  const b = obj(c, p, raw);
  known(c, p, b, BACKEND_KEYS);
  if (typeof b.host !== 'string' || !b.host) c.fail(`${p}.host`, 'an address or hostname', b.host);
  const port = isPort(b.port) ? b.port : c.fail(`${p}.port`, 'a whole number from 1 to 65535', b.port);
  const rawName = b.name === undefined ? `${b.host}:${port}` : b.name;
  if (typeof rawName !== 'string' || !NAME.test(rawName)) c.fail(`${p}.name`, 'a name of letters, digits and _.:-', rawName);
  const name = rawName as string;
  if (names.has(name)) c.fail(`${p}.name`, 'a name not used by another backend', name);
  names.add(name);
  // Most backends have none: one shared empty set instead of an object each (~56 B).
  let labels = NO_LABELS;
  if (b.labels !== undefined) {
    labels = {};
    for (const [k, v] of Object.entries(obj(c, `${p}.labels`, b.labels))) {
      if (!LABEL.test(k)) c.fail(`${p}.labels`, 'label names like [a-zA-Z_][a-zA-Z0-9_]*', k);
      if (typeof v !== 'string' && typeof v !== 'number') c.fail(`${p}.labels.${k}`, 'a string', v);
    }
    for (const [k, v] of Object.entries(b.labels as Record<string, unknown>)) labels[k] = String(v);
  }
  const t = timing(c, p, b, base) as BackendConfig;
  const host = b.host as string;
  const addr = parseAddress(unbracket(host));
  const out: BackendConfig = {
    name, host, port,
    weight: b.weight === undefined ? undefined : int(c, `${p}.weight`, b.weight, 0, 256),
    labels,
    interval: t.interval, timeout: t.timeout, rise: t.rise, fall: t.fall, jitter: t.jitter, initial: t.initial,
    fastinter: t.fastinter ?? t.interval, downinter: t.downinter ?? t.interval,
    slowstart: t.slowstart, logFailures: t.logFailures, resolveInterval: t.resolveInterval,
  };
  route(c, p, b, addr, baseRoute, out);
  if (out.timeout > out.interval) c.fail(`${p}.timeout`, `at most the interval (${out.interval} ms)`, out.timeout);
  // Two names for one host:port would check it twice and answer the agent for
  // the first only: almost always a copy-paste slip, so it takes an opt-in.
  const target = addr === null ? `${host.toLowerCase()}:${port}` : (addr << 16n) | BigInt(port);
  const first = targets.get(target);
  if (first !== undefined && !allowDuplicates) c.fail(`${p}`, `a host:port not already checked by backend "${first}" (or allow_duplicates: true)`, hostPort(host, port));
  if (first === undefined) targets.set(target, name);
  return out;
}

/** The `probe` section: how the daemon's engine sends. */
function probeSection(c: Ctx, raw: unknown): ServeConfig['probe'] {
  const probe = obj(c, 'probe', raw);
  known(c, 'probe', probe, ['interface', 'source_ports', 'senders', 'rate', 'xdp_mode', 'rst', 'hook']);
  const sourcePorts = probe.source_ports === undefined ? { lo: 62000, hi: 62999 }
    : parsePortRange(String(probe.source_ports)) ?? c.fail('probe.source_ports', 'LO-HI within 1-65535', probe.source_ports);
  return {
    interface: probe.interface === undefined ? undefined : String(probe.interface),
    sourcePorts,
    senders: probe.senders === undefined ? 1 : int(c, 'probe.senders', probe.senders, 1, 64),
    rate: probe.rate === undefined ? 0 : int(c, 'probe.rate', probe.rate, 0, 100_000_000),
    xdpMode: oneOf(c, 'probe.xdp_mode', probe.xdp_mode, ['auto', 'native', 'generic'] as const),
    rst: oneOf(c, 'probe.rst', probe.rst, ['auto', 'xdp', 'kernel'] as const),
    hook: oneOf(c, 'probe.hook', probe.hook, ['auto', 'xdp', 'tc'] as const),
  };
}

/** `each`: see BackendSink. */
export function loadConfig(file: string, each?: BackendSink): ServeConfig {
  // The text is let go once parsed: while the backends are validated only the document is needed (~50 MB less at 1,000,000).
  return configOf(readDocument(file), file, each);
}

function readDocument(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new HalfopenError('E_CONFIG', `${file}: cannot read the config: ${e.code ?? e.message}`, { errno: e.errno, syscall: e.syscall });
  }
  return parseDocument(text, file);
}

/**
 * The config reader's young generation, MB. What it keeps is the digest and
 * the changed backends, and the rest dies young: V8's default (16 MB
 * semi-spaces) was ~25 MB more resident at a reload of 100,000 backends.
 */
const READER_YOUNG_MB = 4;

/** Backends per message from the config reader: the main thread takes each in one short task (~10 ms at 5,000). */
const BACKENDS_PER_MESSAGE = 5000;

/**
 * What the config reader keeps of a backend list to tell the next one's
 * changes: the names in order ("\n" between them: no name has one) and a
 * 64-bit fingerprint of each backend's config (two 32-bit words).
 */
export interface ConfigDigest { names: string; fps: Uint32Array }

/** Of a list loadConfigOffThread returned: its digest, and per backend the index of the previous list's backend it is (-1: read anew). */
const digests = new WeakMap<readonly BackendConfig[], { digest: ConfigDigest; from: Int32Array }>();

/** Per backend of a list loadConfigOffThread returned, the index in `previous` of the very BackendConfig it reuses, -1 for one read anew; undefined when none were reused. */
export function previousIndex(backends: readonly BackendConfig[]): Int32Array | undefined {
  return digests.get(backends)?.from;
}

/**
 * Two 32-bit FNV-style hashes of the backend's config as parsed (defaults
 * applied), at out[2i], out[2i+1]. Equal configs give equal fingerprints;
 * labels given in another order give others (the backend is then compared
 * field by field on the main thread, as any changed one).
 */
export function fingerprint(b: BackendConfig, out: Uint32Array, i: number): void {
  const s = JSON.stringify(b);
  let h1 = 0x811c9dc5, h2 = 0x9747b28c ^ s.length;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 13;
  }
  out[2 * i] = h1 >>> 0;
  out[2 * i + 1] = h2 >>> 0;
}

/**
 * A backend list against the previous one's digest, one backend at a time
 * (a BackendSink: an unchanged backend is not kept): the new digest, per
 * backend the previous index of an unchanged one (same name, same
 * fingerprint) or -1, and the backends that are not unchanged, in order.
 * Run by the config reader, on its thread.
 */
export class ConfigDelta {
  private fps = new Uint32Array(0);
  private from = new Int32Array(0);
  private names: string[] = [];
  private readonly changed: BackendConfig[] = [];
  /** Where each previous name starts in prev.names, and one past the end (+1, as if a "\n" followed the last). */
  private readonly starts: Uint32Array;
  /** The previous names by index: made only when a backend is not where it was (a Map of 1,000,000 names is ~50 MB). */
  private at: Map<string, number> | null = null;
  constructor(private readonly prev?: ConfigDigest) {
    const count = prev ? prev.fps.length / 2 : 0;
    this.starts = new Uint32Array(count + 1);
    for (let k = 1, at = 0; k <= count; k++) {
      const nl = prev!.names.indexOf('\n', at);
      at = nl < 0 ? prev!.names.length + 1 : nl + 1;
      this.starts[k] = at;
    }
  }
  /** The previous index of the backend named `name`, i-th now: most often i itself. */
  private previous(name: string, i: number): number {
    const prev = this.prev, starts = this.starts;
    if (!prev) return -1;
    if (i + 1 < starts.length && starts[i + 1] - 1 - starts[i] === name.length && prev.names.startsWith(name, starts[i])) return i;
    if (!this.at) {
      this.at = new Map();
      for (let k = 0; k + 1 < starts.length; k++) this.at.set(prev.names.slice(starts[k], starts[k + 1] - 1), k);
    }
    return this.at.get(name) ?? -1;
  }
  readonly add: BackendSink = (b, i, n) => {
    if (i === 0) { this.fps = new Uint32Array(2 * n); this.from = new Int32Array(n).fill(-1); this.names = new Array(n); }
    const { fps, prev } = this;
    this.names[i] = b.name;
    fingerprint(b, fps, i);
    const j = this.previous(b.name, i);
    if (j >= 0 && prev!.fps[2 * j] === fps[2 * i] && prev!.fps[2 * j + 1] === fps[2 * i + 1]) this.from[i] = j;
    else this.changed.push(b);
  };
  result(): { digest: ConfigDigest; from: Int32Array; changed: BackendConfig[] } {
    return { digest: { names: this.names.join('\n'), fps: this.fps }, from: this.from, changed: this.changed };
  }
}

/** The fields a backend has from its timing (the config's TIMING_KEYS, as BackendConfig names them): the same for most backends of a config. */
const TIMING_FIELDS = TIMING_KEYS.map((k) => k.replace(/_(.)/g, (_, c: string) => c.toUpperCase())) as ReadonlyArray<keyof BackendConfig>;
const IS_TIMING: ReadonlySet<string> = new Set(TIMING_FIELDS);

type SharedBackend = new (b: BackendConfig, labels: Record<string, string>) => BackendConfig;

/**
 * Backends as the main thread keeps them. A structured clone gives every
 * backend a copy of everything: at 100,000 backends ~215 B each (an object
 * with its 16 fields out of line, boxed doubles, an "up" string each). Here
 * the timing fields live in one frozen object per distinct timing, the
 * prototype of every backend with that timing, and equal label sets are one
 * frozen object: ~80 B a backend. Reading b.interval is unchanged; a spread
 * or Object.keys of a backend sees only its own fields (all but the timing:
 * name, host, port, weight, labels, source, mark), and for…in (sameConfig)
 * sees them all.
 */
export function backendSharer(): (b: BackendConfig) => BackendConfig {
  const kinds = new Map<string, SharedBackend>();
  const labelSets = new Map<string, Record<string, string>>();
  return (b) => {
    const key = TIMING_FIELDS.map((k) => b[k]).join(',');
    let Kind = kinds.get(key);
    if (!Kind) {
      const timing: Record<string, unknown> = {};
      for (const k of TIMING_FIELDS) timing[k] = b[k];
      // A constructor per timing, so V8 lays the own fields out in the object itself: every field of c but the timing.
      const K = function (this: Record<string, unknown>, c: BackendConfig, labels: Record<string, string>) {
        for (const k in c) if (!IS_TIMING.has(k)) this[k] = k === 'labels' ? labels : (c as unknown as Record<string, unknown>)[k];
      };
      K.prototype = Object.freeze(timing);
      Kind = K as unknown as SharedBackend;
      kinds.set(key, Kind);
    }
    let labels = NO_LABELS;
    for (const _ in b.labels) {
      const k = JSON.stringify(b.labels);
      labels = labelSets.get(k) ?? Object.freeze(b.labels);
      labelSets.set(k, labels);
      break;
    }
    return new Kind(b, labels);
  };
}

type ReaderMessage = { ok: true; cfg: ServeConfig; total: number; from: Int32Array; digest: ConfigDigest } | { ok: true; backends: BackendConfig[] } | { ok: false; code?: string; message: string };

/**
 * loadConfig on a worker thread: a reload of 100,000 backends reads and
 * validates for 300–500 ms, which the check loop would otherwise wait out.
 * The result is what loadConfig returns; errors come back as the same
 * HalfopenError.
 *
 * With `previous` (the backends of a list this function returned), only the
 * backends whose config changed against it come over, in slices each asked
 * for when the previous one is in (one message of 100,000 took the main
 * thread ~200 ms to take in, and the copies ~30 ms scavenges after); every
 * other one is the very BackendConfig of `previous`. So a reload changing 1 %
 * of 100,000 backends builds 1,000 objects on the main thread, not 100,000,
 * and what is compared and resolved again is those 1,000. The reader itself
 * keeps only those too (loadConfig with a ConfigDelta as its sink): holding
 * every backend it read, a reload of 1,000,000 would have had the reader's
 * thread add about as much memory as serve already holds.
 *
 * `abandon`: asked as each slice comes in; when it says so the reader is
 * stopped and the promise resolves null.
 */
export function loadConfigOffThread(file: string, opts: { previous?: readonly BackendConfig[]; abandon?: () => boolean } = {}): Promise<ServeConfig | null> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Worker } = require('node:worker_threads') as typeof import('node:worker_threads');
  const script = `const { parentPort, workerData } = require('node:worker_threads');
const mod = require(workerData.mod);
const delta = new mod.ConfigDelta(workerData.prev);
let cfg;
try { cfg = mod.loadConfig(workerData.file, delta.add); }
catch (e) { parentPort.postMessage({ ok: false, code: e.code, message: e.message }); }
if (cfg) {
  const { digest, from, changed } = delta.result();
  let at = 0;
  parentPort.postMessage({ ok: true, cfg: { ...cfg, backends: [] }, total: changed.length, from, digest }, [from.buffer, digest.fps.buffer]);
  parentPort.on('message', (m) => {
    if (m !== 'more') return parentPort.close();
    parentPort.postMessage({ ok: true, backends: changed.slice(at, at += workerData.slice) });
  });
}`;
  const previous = opts.previous;
  const known = previous && digests.get(previous);
  return new Promise((resolve, reject) => {
    const w = new Worker(script, { eval: true, workerData: { mod: __filename, file, slice: BACKENDS_PER_MESSAGE, prev: known?.digest }, resourceLimits: { maxYoungGenerationSizeMb: READER_YOUNG_MB } });
    let cfg: ServeConfig | null = null, total = 0, settled = false;
    let from: Int32Array = new Int32Array(0), digest: ConfigDigest | null = null;
    const changed: BackendConfig[] = [];
    const share = backendSharer();
    const done = (f: () => void) => { if (!settled) { settled = true; f(); } };
    const next = () => {
      if (opts.abandon?.()) {
        done(() => resolve(null));
        return void w.terminate();
      }
      if (changed.length < total) return w.postMessage('more');
      w.postMessage('done');
      // The list in the file's order: the previous list's unchanged backends, the changed ones in their places.
      const backends: BackendConfig[] = new Array(from.length);
      for (let i = 0, k = 0; i < from.length; i++) backends[i] = from[i] >= 0 ? previous![from[i]] : changed[k++];
      cfg!.backends = backends;
      digests.set(backends, { digest: digest!, from });
      done(() => resolve(cfg!));
    };
    w.on('message', (m: ReaderMessage) => {
      if (!m.ok) return done(() => reject(new HalfopenError((m.code as ConstructorParameters<typeof HalfopenError>[0]) ?? 'E_CONFIG', m.message)));
      if ('cfg' in m) { cfg = m.cfg; total = m.total; from = m.from; digest = m.digest; return next(); }
      for (const b of m.backends) changed.push(share(b));
      next();
    });
    w.once('error', (e) => done(() => reject(new HalfopenError('E_CONFIG', `${file}: ${e.message}`))));
    w.once('exit', (code) => done(() => reject(new HalfopenError('E_CONFIG', `${file}: the config reader exited with ${code} before it was done`))));
  });
}
