// The `push:` section of serve's config: the balancers serve drives on every
// change (HAProxy's Runtime API, nftlb's REST API), and each backend's
// optional `server:` (its name in HAProxy). Parsed here, called once from
// src/daemon/config.ts; every error names the field and what was expected.
import { Ctx, parseDuration } from '../config-fields';

export interface HaproxyPushConfig {
  /** A unix socket path, or host:port of a TCP `stats socket`. */
  socket: { path: string } | { host: string; port: number };
  /** As written in the config (labels, messages). */
  socketText: string;
  /** The HAProxy backend holding the servers (a backend's `server: B/S` overrides it). */
  backend: string;
  /** Full read-back and correction period, ms. */
  reconcile: number;
  /** How often `show info` is read to notice a restart or reload, ms. */
  poll: number;
  /** Longest wait for one exchange with the socket, ms. */
  timeout: number;
}

export interface NftlbPushConfig {
  /** http://HOST:PORT of nftlb's API. */
  url: string;
  keyFile: string;
  farm: string;
  /** Take the backends to check from the farm, and follow its changes. */
  discover: boolean;
  reconcile: number;
  /** How often the farm is read to notice a restart (and, with discover, added or removed backends), ms. */
  poll: number;
  timeout: number;
}

export interface PushConfig {
  haproxy: HaproxyPushConfig[];
  nftlb: NftlbPushConfig[];
  /** Backend name → its `server:` (HAProxy server name, or BACKEND/SERVER). */
  servers: Record<string, string>;
}

export const NO_PUSH: PushConfig = { haproxy: [], nftlb: [], servers: {} };

type Fail = (path: string, expected: string, got: unknown) => never;

const failer = (file: string): Fail => {
  const c = new Ctx(file);
  return (path, expected, got) => c.fail(path, expected, got);
};

function ms(fail: Fail, path: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  return parseDuration(v) ?? fail(path, 'a duration like 30s, 500ms or 1m', v);
}

function mapping(fail: Fail, path: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(path, 'a mapping', v);
  return v as Record<string, unknown>;
}

function only(fail: Fail, path: string, o: Record<string, unknown>, keys: string[]): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(`${path}.${k}`, `one of the fields ${keys.join(', ')}`, k);
}

function list(fail: Fail, path: string, v: unknown): Record<string, unknown>[] {
  if (v === undefined) return [];
  const items = Array.isArray(v) ? v : [v]; // one balancer may be written without the list
  return items.map((x, i) => mapping(fail, `${path}[${i}]`, x));
}

const NAME = /^[A-Za-z0-9_.:-]+$/;

function text(fail: Fail, path: string, v: unknown, what = 'a name of letters, digits and _.:-', re = NAME): string {
  if (typeof v !== 'string' || !re.test(v)) return fail(path, what, v);
  return v;
}

/** "/run/haproxy/admin.sock", "127.0.0.1:9999", "[::1]:9999". */
function socket(fail: Fail, path: string, v: unknown): HaproxyPushConfig['socket'] {
  if (typeof v === 'string' && v.startsWith('/')) return { path: v };
  const m = typeof v === 'string' ? /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(v) : null;
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) return fail(path, 'a unix socket path (/run/haproxy/admin.sock) or HOST:PORT of a stats socket', v);
  return { host: m[1] ?? m[2], port };
}

/**
 * `push` (the section) and the `server` of each raw backend entry. The key
 * file is read when the target starts, so a reload re-reads it.
 */
export function parsePush(raw: unknown, backends: unknown, file: string): PushConfig {
  const fail = failer(file);
  const servers: Record<string, string> = {};
  if (Array.isArray(backends)) {
    backends.forEach((b, i) => {
      if (typeof b !== 'object' || b === null || (b as Record<string, unknown>).server === undefined) return;
      const r = b as Record<string, unknown>;
      const s = text(fail, `backends[${i}].server`, r.server, 'a HAProxy server name, or BACKEND/SERVER', /^[A-Za-z0-9_.:-]+(\/[A-Za-z0-9_.:-]+)?$/);
      servers[String(r.name ?? `${r.host}:${r.port}`)] = s;
    });
  }
  if (raw === undefined || raw === null) return { ...NO_PUSH, servers };
  const p = mapping(fail, 'push', raw);
  only(fail, 'push', p, ['haproxy', 'nftlb', 'reconcile']);
  const reconcile = ms(fail, 'push.reconcile', p.reconcile, 30_000);
  const haproxy = list(fail, 'push.haproxy', p.haproxy).map((h, i): HaproxyPushConfig => {
    const at = `push.haproxy[${i}]`;
    only(fail, at, h, ['socket', 'backend', 'reconcile', 'poll', 'timeout']);
    return {
      socket: socket(fail, `${at}.socket`, h.socket), socketText: String(h.socket),
      backend: text(fail, `${at}.backend`, h.backend),
      reconcile: ms(fail, `${at}.reconcile`, h.reconcile, reconcile),
      poll: ms(fail, `${at}.poll`, h.poll, 1000),
      timeout: ms(fail, `${at}.timeout`, h.timeout, 2000),
    };
  });
  const nftlb = list(fail, 'push.nftlb', p.nftlb).map((n, i): NftlbPushConfig => {
    const at = `push.nftlb[${i}]`;
    only(fail, at, n, ['url', 'key_file', 'farm', 'discover', 'reconcile', 'poll', 'timeout']);
    const url = typeof n.url === 'string' ? /^http:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})\/?$/.exec(n.url) : null;
    if (!url || Number(url[2]) < 1 || Number(url[2]) > 65535) fail(`${at}.url`, 'http://HOST:PORT of nftlb\'s API, like http://127.0.0.1:27', n.url);
    if (typeof n.key_file !== 'string' || !n.key_file) fail(`${at}.key_file`, 'the path of a file holding nftlb\'s key', n.key_file);
    if (n.discover !== undefined && typeof n.discover !== 'boolean') fail(`${at}.discover`, 'true or false', n.discover);
    return {
      url: (n.url as string).replace(/\/$/, ''), keyFile: n.key_file as string,
      farm: text(fail, `${at}.farm`, n.farm),
      discover: n.discover === true,
      reconcile: ms(fail, `${at}.reconcile`, n.reconcile, reconcile),
      poll: ms(fail, `${at}.poll`, n.poll, 2000),
      timeout: ms(fail, `${at}.timeout`, n.timeout, 2000),
    };
  });
  const seen = new Set<string>();
  for (const t of [...haproxy.map((h) => `haproxy ${h.socketText} ${h.backend}`), ...nftlb.map((n) => `nftlb ${n.url} ${n.farm}`)]) {
    if (seen.has(t)) fail('push', 'each balancer once', t);
    seen.add(t);
  }
  return { haproxy, nftlb, servers };
}

/** Whether some target takes its backends from the balancer (then `backends:` may be empty). */
export const discovers = (p: PushConfig): boolean => p.nftlb.some((n) => n.discover);
