// The plugin socket's part of serve's config: `listen.plugin` (where
// check_tcp_half_open --via asks) and the `plugin:` section (learning unknown
// backends). Parsed here so config.ts only calls parsePluginConfig().
import path from 'node:path';
import { AllowList } from './allow-list';
import { isV4 } from '../targets/address';
import { parseExcludeSpec } from '../targets/target-set';
import type { BackendConfig } from './config';

export interface PluginConfig {
  /** The unix socket check_tcp_half_open --via connects to; undefined = no plugin socket. */
  socket?: string;
  /** A HOST PORT serve does not check becomes a backend (the defaults' timings). */
  learn: boolean;
  /**
   * Targets that may be learned (addresses, CIDRs, ranges, names), validated
   * here; the socket builds its AllowList from them (the config crosses a
   * worker thread on reload, so it holds plain data only).
   */
  allow: string[];
  /** Learned backends at most. */
  maxLearned: number;
  /** A learned backend nobody asked about for this long is dropped, ms. */
  forgetAfter: number;
  /** The timings a learned backend gets: the config's defaults. */
  timings: Omit<BackendConfig, 'name' | 'host' | 'port' | 'labels' | 'weight' | 'source' | 'mark'>;
}

export const PLUGIN_KEYS = ['learn', 'allow', 'max_learned', 'forget_after'] as const;
export const DEFAULT_MAX_LEARNED = 1024;
export const DEFAULT_FORGET_AFTER_MS = 10 * 60_000;
/** The longest socket path a sockaddr_un takes (108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;

type Fail = (path: string, expected: string, got: unknown) => never;
type Duration = (path: string, v: unknown) => number;

/**
 * `listen.plugin` and `plugin.*`. `defaults` are the parsed default timings
 * (config.ts `timing()` of `defaults`); `fail` and `duration` are config.ts's
 * error and duration helpers, so messages read the same.
 */
export function parsePluginConfig(root: Record<string, unknown>, listen: Record<string, unknown>, defaults: Partial<BackendConfig>,
  fail: Fail, duration: Duration): PluginConfig {
  let socket: string | undefined;
  if (listen.plugin !== undefined) {
    const s = listen.plugin;
    // farmguardian substitutes the words HOST and PORT anywhere in its command line.
    if (typeof s !== 'string' || !path.isAbsolute(s) || Buffer.byteLength(s) > MAX_SOCKET_PATH || /HOST|PORT/.test(s) || /[\s\0]/.test(s))
      fail('listen.plugin', `an absolute unix socket path of at most ${MAX_SOCKET_PATH} bytes, without spaces or the words HOST and PORT`, s);
    socket = s as string;
  }
  const raw = root.plugin ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('plugin', 'a mapping', raw);
  const p = raw as Record<string, unknown>;
  for (const k of Object.keys(p)) if (!(PLUGIN_KEYS as readonly string[]).includes(k)) fail(`plugin.${k}`, `one of the fields ${PLUGIN_KEYS.join(', ')}`, k);
  if (p.learn !== undefined && typeof p.learn !== 'boolean') fail('plugin.learn', 'true or false', p.learn);
  const learn = p.learn === true;
  let allow: AllowList;
  try {
    allow = AllowList.parse(p.allow ?? [], 'plugin.allow');
  } catch (err) {
    return fail('plugin.allow', `a list of addresses, CIDRs, ranges or host names (${(err as Error).message})`, p.allow);
  }
  if (learn && allow.empty) fail('plugin.allow', 'the addresses, CIDRs, ranges or names plugin.learn may take (learning probes on request)', p.allow);
  if (learn && !socket) fail('listen.plugin', 'a socket path when plugin.learn is true', undefined);
  const maxLearned = p.max_learned === undefined ? DEFAULT_MAX_LEARNED : p.max_learned;
  if (typeof maxLearned !== 'number' || !Number.isInteger(maxLearned) || maxLearned < 1 || maxLearned > 100_000) fail('plugin.max_learned', 'a whole number from 1 to 100000', maxLearned);
  const forgetAfter = p.forget_after === undefined ? DEFAULT_FORGET_AFTER_MS : duration('plugin.forget_after', p.forget_after);
  const d = defaults as BackendConfig;
  const interval = d.interval;
  const timings = {
    interval, timeout: d.timeout, rise: d.rise, fall: d.fall, jitter: d.jitter,
    fastinter: d.fastinter ?? interval, downinter: d.downinter ?? interval,
    // A learned backend is down until its first check, which alone decides it (see Monitor.learn).
    initial: 'down' as const, slowstart: d.slowstart, logFailures: d.logFailures, resolveInterval: d.resolveInterval,
  };
  if (learn && timings.timeout > timings.interval) fail('defaults.timeout', `at most the interval (${timings.interval} ms) for learned backends`, timings.timeout);
  return {
    socket, learn, allow: ((p.allow ?? []) as string[]).map((e) => e.trim()),
    maxLearned: maxLearned as number, forgetAfter, timings,
  };
}

/**
 * Addresses to find the probe route by for the families learning may add and
 * `configured` lacks (the first of each plugin.allow range): serve may start
 * from no backends at all.
 */
export function learnRouteSamples(cfg: PluginConfig, configured: readonly bigint[]): bigint[] {
  if (!cfg.learn) return [];
  const have = new Set(configured.map(isV4));
  const out: bigint[] = [];
  for (const e of cfg.allow) {
    let lo: bigint;
    try { lo = parseExcludeSpec(e).lo; } catch { continue; } // a name: resolved later
    if (!have.has(isV4(lo))) { have.add(isV4(lo)); out.push(lo); }
  }
  return out;
}
