// `halfopen check` and `check_tcp_half_open`: one half-open TCP check with
// Nagios plugin semantics, for farmguardian, Nagios/Icinga and keepalived.
//
//   halfopen check HOST PORT
//   halfopen check -H HOST -p PORT [-t SECONDS] [-w SECONDS] [-c SECONDS] [-4|-6] [--json]
//
// Exit 0 OK (open), 1 WARNING (slower than -w), 2 CRITICAL (closed, filtered,
// unreachable, timeout, unresolvable, slower than -c), 3 UNKNOWN (usage or
// privilege error). One status line with perfdata on stdout, or one JSON
// object with --json.
//
// check_tcp_half_open is the same check as a native program
// (native/plugin/check_main.cc around the addon's own check core): it prints
// byte for byte what this prints, and test/integration/check.test.ts runs one
// table of cases against both.
//
// This runs once per backend per interval, so whole-process time is its cost:
// the module loads only node builtins, errors, privileges and the address
// parser; argv is parsed by hand (no commander), and the native addon is
// required only when a check is actually sent. The check itself is one
// synchronous native call (native/addon/check_binding.cc): raw sockets, no XDP.
import { HalfopenError, usageError } from '../errors';
import { effectiveCaps } from '../privileges';
import { addressBytes, formatAddress, isV4, parseAddress } from '../targets/address';
import type { CheckOptions, CheckResult } from '../addon/addon';
import { roundMs } from '../types';
import {
  HO_CHECK_OK, HO_CHECK_WARNING, HO_CHECK_CRITICAL, HO_CHECK_UNKNOWN, HO_CHECK_TIMEOUT_S, HO_CHECK_MAX_TIMEOUT_S,
  ReasonName,
} from '../contract.generated';

export const EXIT_OK = HO_CHECK_OK;
export const EXIT_WARNING = HO_CHECK_WARNING;
export const EXIT_CRITICAL = HO_CHECK_CRITICAL;
export const EXIT_UNKNOWN = HO_CHECK_UNKNOWN;

export const DEFAULT_TIMEOUT_S = HO_CHECK_TIMEOUT_S;
export const MAX_TIMEOUT_S = HO_CHECK_MAX_TIMEOUT_S;
const CAP_NET_RAW = 13n;

export const USAGE = 'Usage: check_tcp_half_open HOST PORT | check_tcp_half_open -H HOST -p PORT [-t SECONDS] [-w SECONDS] [-c SECONDS] [-4|-6] [--json]';

/**
 * The options as --help and the man page (scripts/gen-man.js) show them: one
 * table, so the two cannot drift. `help` holds the --help lines as printed
 * (native/plugin/check_main.cc prints the same bytes); the man page joins them.
 * parseCheckArgs below accepts exactly these flags.
 */
export const CHECK_OPTIONS: ReadonlyArray<{ flags: string; value?: string; help: readonly string[] }> = [
  { flags: '-H, --hostname', value: 'HOST', help: ['address or hostname to check'] },
  { flags: '-p, --port', value: 'PORT', help: ['TCP port, 1-65535'] },
  { flags: '-t, --timeout', value: 'SECS', help: [`deadline for the whole check (default ${DEFAULT_TIMEOUT_S}); a lost SYN`, 'is resent after 0.2 s, 0.4 s, 0.8 s, ... within it'] },
  { flags: '-w, --warning', value: 'SECS', help: ['WARNING when the response time is above SECS'] },
  { flags: '-c, --critical', value: 'SECS', help: ['CRITICAL when the response time is above SECS'] },
  { flags: '-4, -6', help: ['use IPv4 or IPv6 only (also for hostname lookups)'] },
  { flags: '    --json', help: ['print one JSON object (ip, port, state, reason, rtt_ms, ttl, ts)'] },
  { flags: '    --via', value: 'SOCKET', help: ['ask halfopen serve at its plugin socket (listen.plugin) and print', 'its verdict, rise/fall applied; checks live when it cannot answer'] },
  { flags: '-h, --help', help: ['this text'] },
  { flags: '-V, --version', help: ['the version'] },
];
export const CHECK_DESCRIPTION = ['One half-open TCP check: a SYN goes out, a SYN+ACK means open and the kernel', 'answers it with RST, so the service never sees a connection.'];
export const CHECK_ENVIRONMENT = 'MARK=N or MARK=0xN marks the SYNs (SO_MARK), as SKUDONET sets for l4xnat farms.';
/** Exit codes with what they mean; --help prints them on two lines (CHECK_EXIT_HELP), the man page one per item. */
export const CHECK_EXIT_CODES: ReadonlyArray<[number, string]> = [
  [EXIT_OK, 'OK (open)'], [EXIT_WARNING, 'WARNING (slower than -w)'],
  [EXIT_CRITICAL, 'CRITICAL (closed, filtered, unreachable, timeout, slower than -c)'], [EXIT_UNKNOWN, 'UNKNOWN (usage, privileges)'],
];
const CHECK_EXIT_HELP = ['Exit codes: 0 OK (open), 1 WARNING (slower than -w), 2 CRITICAL (closed, filtered, unreachable,', 'timeout, slower than -c), 3 UNKNOWN (usage, privileges).'];

const HELP = [
  USAGE,
  ...CHECK_DESCRIPTION,
  '',
  ...CHECK_OPTIONS.flatMap((o) => o.help.map((l, i) => `${i ? '' : `  ${o.flags}${o.value ? ` ${o.value}` : ''}`}`.padEnd(24) + l)),
  `Environment: ${CHECK_ENVIRONMENT}`,
  ...CHECK_EXIT_HELP,
  '',
].join('\n');

export interface CheckArgs {
  host: string;
  port: number;
  timeoutS: number;
  /** Response-time thresholds in seconds (-w, -c). */
  warningS?: number;
  criticalS?: number;
  family?: 4 | 6;
  json: boolean;
}

export type ParsedArgs = CheckArgs | { help: true } | { version: true };

type ValueKey = 'host' | 'port' | 'timeout' | 'warning' | 'critical' | 'via';
const OPTS_WITH_VALUE: Record<string, ValueKey> = {
  '-H': 'host', '--hostname': 'host', '--host': 'host',
  '-p': 'port', '--port': 'port',
  '-t': 'timeout', '--timeout': 'timeout',
  '-w': 'warning', '--warning': 'warning',
  '-c': 'critical', '--critical': 'critical',
  '--via': 'via', // accepted so one table describes both programs; run() hands --via to the native plugin
};

/** Parses both argument forms; throws E_USAGE naming the bad argument. */
export function parseCheckArgs(argv: readonly string[]): ParsedArgs {
  const got: Partial<Record<ValueKey, string>> = {};
  const seen = new Set<string>();
  let family: 4 | 6 | undefined;
  let json = false;
  const positional: string[] = [];
  const set = (key: ValueKey, value: string, flag: string) => {
    if (seen.has(key)) throw usageError(`${flag} given twice`);
    seen.add(key);
    got[key] = value;
  };
  const setFamily = (f: 4 | 6) => {
    if (family !== undefined && family !== f) throw usageError('-4 and -6 exclude each other');
    family = f;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { positional.push(...argv.slice(i + 1)); break; }
    if (!a.startsWith('-') || a === '-') { positional.push(a); continue; }
    if (a === '-h' || a === '--help') return { help: true };
    if (a === '-V' || a === '--version') return { version: true };
    if (a === '-4' || a === '--use-ipv4') { setFamily(4); continue; }
    if (a === '-6' || a === '--use-ipv6') { setFamily(6); continue; }
    if (a === '--json') { json = true; continue; }
    // -H HOST, -HHOST, --hostname HOST, --hostname=HOST
    let flag = a, value: string | undefined;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) { flag = a.slice(0, eq); value = a.slice(eq + 1); }
    else if (!a.startsWith('--') && a.length > 2) { flag = a.slice(0, 2); value = a.slice(2); }
    const key = OPTS_WITH_VALUE[flag];
    if (!key) throw usageError(`unknown option "${a}"`);
    if (value === undefined) {
      if (i + 1 >= argv.length) throw usageError(`${flag} needs a value`);
      value = argv[++i];
    }
    set(key, value, flag);
  }
  // Positionals fill HOST, then PORT, whichever the flags left open.
  for (const p of positional) {
    if (!seen.has('host')) set('host', p, 'HOST');
    else if (!seen.has('port')) set('port', p, 'PORT');
    else throw usageError(`unexpected argument "${p}"`);
  }
  if (got.host === undefined || got.host === '') throw usageError('missing HOST');
  if (got.port === undefined) throw usageError('missing PORT');
  const out: CheckArgs = { host: unbracket(got.host), port: parsePort(got.port), timeoutS: parseTimeout(got.timeout), family, json };
  if (got.warning !== undefined) out.warningS = parseThreshold(got.warning, 'warning');
  if (got.critical !== undefined) out.criticalS = parseThreshold(got.critical, 'critical');
  return out;
}

const unbracket = (h: string): string => (h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h);

export function parsePort(s: string): number {
  const n = /^\d{1,5}$/.test(s) ? Number(s) : NaN;
  if (!(n >= 1 && n <= 65535)) throw usageError(`invalid port "${s}": expected a number from 1 to 65535`);
  return n;
}

export function parseTimeout(s: string | undefined): number {
  if (s === undefined) return DEFAULT_TIMEOUT_S;
  const n = /^(\d+(\.\d*)?|\.\d+)$/.test(s) ? Number(s) : NaN;
  if (!(n > 0 && n <= MAX_TIMEOUT_S)) throw usageError(`invalid timeout "${s}": expected seconds above 0 and at most ${MAX_TIMEOUT_S}, e.g. 5 or 0.5`);
  return n;
}

/** A -w/-c response-time threshold in seconds: 0 to MAX_TIMEOUT_S. */
export function parseThreshold(s: string, which: 'warning' | 'critical'): number {
  const n = /^(\d+(\.\d*)?|\.\d+)$/.test(s) ? Number(s) : NaN;
  if (!(n >= 0 && n <= MAX_TIMEOUT_S)) throw usageError(`invalid ${which} threshold "${s}": expected seconds from 0 to ${MAX_TIMEOUT_S}, e.g. 0.5`);
  return n;
}

/** MARK from the environment (SKUDONET sets it for l4xnat farms): decimal or 0x hex; 0 = none. */
export function parseMark(s: string | undefined): number {
  if (s === undefined || s.trim() === '') return 0;
  const t = s.trim();
  const n = /^\d+$/.test(t) ? Number(t) : /^0x[0-9a-f]+$/i.test(t) ? Number.parseInt(t.slice(2), 16) : NaN;
  if (!(n >= 0 && n <= 0xffff_ffff)) throw new HalfopenError('E_CONFIG', `invalid MARK "${s}" in the environment: expected a decimal or 0x hex number up to 0xffffffff`);
  return n;
}

const DEADLINE = Symbol('deadline');

export interface Target { ip: string; family: 4 | 6; bytes: Buffer }

/** Resolves host within timeoutMs; rejects with {code} on failure, or with DEADLINE when the time ran out. */
export type LookupFn = (host: string, family: 0 | 4 | 6, timeoutMs: number) => Promise<{ address: string; family: number }>;

/**
 * The resolver check_tcp_half_open uses too (native/core/check_core.cc):
 * getaddrinfo in a detached thread, so a hanging resolver costs no more than
 * the deadline, also at exit (dns.lookup's libuv pool would hold the exit).
 */
const nativeLookup: LookupFn = async (host, family, timeoutMs) => {
  const r = (require('../addon/addon') as typeof import('../addon/addon')).native.resolve(host, family, timeoutMs);
  if ('late' in r) throw DEADLINE;
  if ('code' in r) throw Object.assign(new Error(`getaddrinfo ${r.code} ${host}`), { code: r.code });
  return r;
};

function targetOf(address: string, host: string, want?: 4 | 6): Target | null {
  const a = parseAddress(address);
  if (a === null) return null;
  const family: 4 | 6 = isV4(a) ? 4 : 6;
  if (want && family !== want) throw usageError(`${host} is an IPv${family} address but -${want} was given`);
  const b = Buffer.from(addressBytes(a));
  return { ip: formatAddress(a), family, bytes: family === 4 ? b.subarray(12) : b };
}

/** An address literal as is; a hostname through getaddrinfo (respecting -4/-6). The first address wins. */
export async function resolveTarget(host: string, family?: 4 | 6, lookup: LookupFn = nativeLookup, timeoutMs = DEFAULT_TIMEOUT_S * 1000): Promise<Target> {
  const literal = targetOf(host, host, family);
  if (literal) return literal;
  let r;
  try {
    r = await lookup(host, family ?? 0, timeoutMs);
  } catch (err) {
    if (err === DEADLINE) throw err;
    const e = err as { code?: string; message?: string };
    throw new HalfopenError('E_RESOLVE', `cannot resolve "${host}": ${e.code ?? e.message ?? String(err)}`);
  }
  const t = targetOf(r.address, host);
  if (!t) throw new HalfopenError('E_RESOLVE', `cannot resolve "${host}": the resolver returned "${r.address}"`);
  if (family && t.family !== family) throw new HalfopenError('E_RESOLVE', `cannot resolve "${host}": no IPv${family} address`);
  return t;
}

// ---- output --------------------------------------------------------------

export interface Outcome {
  host: string;
  ip: string;
  port: number;
  timeoutS: number;
  warningS?: number;
  criticalS?: number;
  result: CheckResult;
  /** Wall time of the whole check, nanoseconds. */
  elapsedNs: number;
  ts: Date;
}

const ICMP4_UNREACH: Record<number, string> = {
  0: 'Network unreachable', 1: 'Host unreachable', 2: 'Protocol unreachable', 3: 'Port unreachable',
  4: 'Fragmentation needed', 5: 'Source route failed', 6: 'Destination network unknown', 7: 'Destination host unknown',
  8: 'Source host isolated', 9: 'Network administratively prohibited', 10: 'Host administratively prohibited',
  11: 'Network unreachable for TOS', 12: 'Host unreachable for TOS', 13: 'Communication administratively prohibited',
  14: 'Host precedence violation', 15: 'Precedence cutoff in effect',
};
const ICMP6_UNREACH: Record<number, string> = {
  0: 'No route to destination', 1: 'Communication administratively prohibited', 2: 'Beyond scope of source address',
  3: 'Address unreachable', 4: 'Port unreachable', 5: 'Source address failed ingress/egress policy',
  6: 'Reject route to destination', 7: 'Error in source routing header',
};

export function icmpDescription(family: 4 | 6, type: number, code: number): string {
  const table = family === 4 ? (type === 3 ? ICMP4_UNREACH : {}) : (type === 1 ? ICMP6_UNREACH : {});
  return table[code] ?? 'Destination unreachable';
}

const secs = (ns: number): string => (ns / 1e9).toFixed(6);

/** Nagios perfdata: time=VALUEs;WARN;CRIT;MIN;MAX (check_tcp's layout). */
function perfdata(timeNs: number, o: { timeoutS: number; warningS?: number; criticalS?: number }): string {
  return `|time=${secs(timeNs)}s;${o.warningS?.toFixed(6) ?? ''};${o.criticalS?.toFixed(6) ?? ''};0.000000;${o.timeoutS.toFixed(6)}`;
}

/** The Nagios status line (with perfdata) and the exit code of an outcome. */
export function formatOutcome(o: Outcome): { code: number; line: string } {
  const r = o.result;
  const where = `on ${o.host === o.ip ? o.ip : `${o.host} (${o.ip})`} port ${o.port}`;
  const timeNs = r.rttNs ?? o.elapsedNs;
  const perf = perfdata(timeNs, o);
  const family: 4 | 6 = o.ip.includes(':') ? 6 : 4;
  const errname = r.errname ?? (r.errno !== undefined ? `errno ${r.errno}` : '');
  let text: string;
  switch (r.state) {
    case 'open': {
      const [label, code] = o.criticalS !== undefined && timeNs > o.criticalS * 1e9 ? ['CRITICAL', EXIT_CRITICAL]
        : o.warningS !== undefined && timeNs > o.warningS * 1e9 ? ['WARNING', EXIT_WARNING] : ['OK', EXIT_OK];
      return { code, line: `TCP ${label} - ${secs(timeNs)} second response time ${where}${perf}` };
    }
    case 'closed':
      text = `Connection refused (RST) ${where}`;
      break;
    case 'filtered':
      text = r.reason === 'local-firewall'
        ? `SYN dropped by a local firewall rule (${errname}) ${where}`
        : `No response (filtered) ${where}: ${r.attempts} SYN${r.attempts === 1 ? '' : 's'} in ${(o.elapsedNs / 1e9).toFixed(3)} seconds`;
      break;
    case 'unreachable':
      if (r.icmpType !== undefined && r.icmpCode !== undefined)
        text = `${icmpDescription(family, r.icmpType, r.icmpCode)} (ICMP type ${r.icmpType} code ${r.icmpCode} from ${r.from}) ${where}`;
      else text = `No route to host (${errname}) ${where}`;
      break;
    default:
      return { code: EXIT_UNKNOWN, line: `TCP UNKNOWN - unexpected result ${JSON.stringify(r)} ${where}` };
  }
  return { code: EXIT_CRITICAL, line: `TCP CRITICAL - ${text}${perf}` };
}

/** The --json object: the sweep's ndjson record (ip, port, state, reason, rtt_ms, ttl, ts), key order pinned. */
export function formatJson(o: Outcome): string {
  const r = o.result;
  return JSON.stringify({
    ip: o.ip, port: o.port, state: r.state, reason: r.reason,
    rtt_ms: r.rttNs === null ? null : roundMs(r.rttNs / 1e6), ttl: r.ttl, ts: o.ts.toISOString(),
  });
}

// ---- main ----------------------------------------------------------------

export interface CheckDeps {
  write?: (text: string) => void;
  env?: NodeJS.ProcessEnv;
  lookup?: LookupFn;
  /** The native check; the addon is loaded only when this is absent and a check runs. */
  check?: (opts: CheckOptions) => CheckResult;
  caps?: () => bigint;
  now?: () => Date;
}

/** Runs one check from argv (after the command name); returns the Nagios exit code. */
export async function main(argv: readonly string[], deps: CheckDeps = {}): Promise<number> {
  const started = process.hrtime.bigint();
  const write = deps.write ?? writeStdout;
  let args: CheckArgs | undefined;
  const unknown = (err: unknown): number => {
    const e = err as HalfopenError;
    const message = e instanceof HalfopenError ? e.message : String((e as Error)?.stack ?? err);
    if (args?.json) {
      write(`${JSON.stringify({ ip: null, port: args.port, state: 'unknown', reason: e?.code ?? 'E_INTERNAL', error: message })}\n`);
    } else {
      write(`TCP UNKNOWN - ${message}\n`);
      if (e instanceof HalfopenError && e.code === 'E_USAGE') write(`${USAGE}\n`);
    }
    return EXIT_UNKNOWN;
  };
  let parsed: ParsedArgs;
  try {
    parsed = parseCheckArgs(argv);
  } catch (err) {
    return unknown(err);
  }
  if ('help' in parsed) { write(HELP); return EXIT_OK; }
  if ('version' in parsed) {
    write(`check_tcp_half_open (halfopen) ${(require('../../../package.json') as { version: string }).version}\n`);
    return EXIT_OK;
  }
  args = parsed;
  const a = args;
  const deadline = started + BigInt(Math.round(a.timeoutS * 1e9));
  try {
    const mark = parseMark((deps.env ?? process.env).MARK);
    const caps = (deps.caps ?? effectiveCaps)();
    if (!((caps >> CAP_NET_RAW) & 1n))
      throw new HalfopenError('E_PRIVILEGE', 'the half-open check needs CAP_NET_RAW (raw sockets): run it as root, or through sudo');

    let target: Target;
    try {
      const leftMs = Math.max(0, Math.floor(Number(deadline - process.hrtime.bigint()) / 1e6));
      target = await withDeadline(resolveTarget(a.host, a.family, deps.lookup, leftMs), deadline);
    } catch (err) {
      if (err instanceof HalfopenError && err.code === 'E_RESOLVE') return critical(a, err.message, started, 'dns-failure', write, deps);
      if (err === DEADLINE) return critical(a, `resolving "${a.host}" took longer than the ${a.timeoutS} s deadline`, started, 'timeout', write, deps);
      throw err;
    }
    const remainingMs = Math.max(1, Math.floor(Number(deadline - process.hrtime.bigint()) / 1e6));
    const check = deps.check ?? (require('../addon/addon') as typeof import('../addon/addon')).native.check;
    const result = check({ family: target.family, addr: target.bytes, port: a.port, timeoutMs: remainingMs, mark });
    const outcome: Outcome = {
      host: a.host, ip: target.ip, port: a.port, timeoutS: a.timeoutS, warningS: a.warningS, criticalS: a.criticalS, result,
      elapsedNs: Number(process.hrtime.bigint() - started), ts: (deps.now ?? (() => new Date()))(),
    };
    const { code, line } = formatOutcome(outcome);
    write(`${a.json ? formatJson(outcome) : line}\n`);
    return code;
  } catch (err) {
    return unknown(err);
  }
}

/**
 * Straight to fd 1: touching process.stdout builds a stream (and loads net or
 * tty for it), which costs a few milliseconds on every invocation.
 */
function writeStdout(text: string): void {
  const fs = require('node:fs') as typeof import('node:fs');
  const buf = Buffer.from(text);
  let waits = 0;
  for (let off = 0; off < buf.length;) {
    try {
      off += fs.writeSync(1, buf, off);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A non-blocking stdout that is full: wait 1 ms for the reader (at most ~5 s).
      if (code === 'EAGAIN' && ++waits < 5000) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
        continue;
      }
      // The exit code is the verdict and stands; a reader that went away (EPIPE)
      // needs no word, anything else is said on stderr rather than lost silently.
      if (code !== 'EPIPE') {
        try { fs.writeSync(2, `check_tcp_half_open: cannot write the result to stdout: ${code ?? err}\n`); } catch { /* nowhere left to say it */ }
      }
      return;
    }
  }
}


/** Resolves like p, or rejects with DEADLINE once process.hrtime reaches `deadline`. */
function withDeadline<T>(p: Promise<T>, deadline: bigint): Promise<T> {
  const ms = Number(deadline - process.hrtime.bigint()) / 1e6;
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(DEADLINE), Math.max(0, ms)); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** CRITICAL before any SYN went out: the name did not resolve in time. */
function critical(a: CheckArgs, message: string, started: bigint, reason: ReasonName, write: (s: string) => void, deps: CheckDeps): number {
  const elapsedNs = Number(process.hrtime.bigint() - started);
  if (a.json) {
    const ts = (deps.now ?? (() => new Date()))().toISOString();
    write(`${JSON.stringify({ ip: null, port: a.port, state: 'unreachable', reason, rtt_ms: null, ttl: null, ts })}\n`);
  } else {
    write(`TCP CRITICAL - ${message}${perfdata(elapsedNs, a)}\n`);
  }
  return EXIT_CRITICAL;
}

/** Entry for the binaries: run, then exit with the code (the output went out with writeSync). */
/**
 * --via (ask halfopen serve) is the native plugin's: handed to it whole, its
 * output and exit code passed through: the formatting of serve's verdicts
 * exists once, in native/plugin/check_main.cc.
 */
function runNative(argv: readonly string[]): boolean {
  if (!argv.some((a) => a === '--via' || a.startsWith('--via='))) return false;
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const path = require('node:path') as typeof import('node:path');
  const fs = require('node:fs') as typeof import('node:fs');
  const bin = [path.resolve(__dirname, '../../../native/plugin/build/check_tcp_half_open'), '/usr/lib/nagios/plugins/check_tcp_half_open'].find((f) => fs.existsSync(f));
  if (!bin) {
    writeStdout('TCP UNKNOWN - --via needs the native check_tcp_half_open (native/plugin/build, or /usr/lib/nagios/plugins): not found\n');
    process.exit(EXIT_UNKNOWN);
  }
  const r = spawnSync(bin, argv, { stdio: 'inherit' });
  process.exit(r.status ?? EXIT_UNKNOWN);
}

export function run(argv: readonly string[]): void {
  if (runNative(argv)) return;
  main(argv).then((code) => process.exit(code), (err) => {
    writeStdout(`TCP UNKNOWN - ${String((err as Error)?.stack ?? err)}\n`);
    process.exit(EXIT_UNKNOWN);
  });
}
