// HAProxy through its Runtime API (`stats socket … level admin`). Every tick's
// changes go out in one connection in prompt mode, one `set server` per
// line; the state is read back (`show servers state`) and corrected at start,
// after every failure, when `show info` shows a new pid or a smaller uptime
// (a restart, or a master-worker reload by SIGUSR2), and every `reconcile`.
//
// Which command carries up/down (measured on HAProxy 2.6, docs/push.md):
// a server with an agent-check gets `set server B/S agent up|down` (`health`
// would be lifted by the agent's next `up`, and with `check` as well the
// agent state is the one serve owns); every other server, with or without
// its own `check`, gets `set server B/S health up|down`. The shape is read
// from `show servers state` (srv_agent_state's CONFIGURED bit) at reconcile.
import net from 'node:net';
import type { HaproxyPushConfig } from './config';
import { BackendView, PushHost, QueuedTarget } from './target';

/** CHK_ST_CONFIGURED in srv_check_state / srv_agent_state. */
const CHK_CONFIGURED = 0x02;
/** SRV_ADMF_FMAINT and SRV_ADMF_FDRAIN in srv_admin_state (the forced ones, which `set server … state` sets). */
const ADMF_FMAINT = 0x01;
const ADMF_FDRAIN = 0x08;

/** One row of `show servers state`, the fields reconcile needs. */
export interface ServerRow { backend: string; server: string; op: number; admin: number; uweight: number; iweight: number; check: number; agent: number }

export function parseServersState(text: string): ServerRow[] {
  const rows: ServerRow[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#') || /^\d+$/.test(line)) continue;
    const f = line.split(' ');
    if (f.length < 15) continue;
    rows.push({ backend: f[1], server: f[3], op: +f[5], admin: +f[6], uweight: +f[7], iweight: +f[8], check: +f[13], agent: +f[14] });
  }
  return rows;
}

/** pid and uptime from `show info`: a new pid or a smaller uptime is a restart or reload. */
export function parseInfo(text: string): { pid: number; uptime: number } | null {
  const pid = /^Pid: (\d+)$/m.exec(text), up = /^Uptime_sec: (\d+)$/m.exec(text);
  return pid && up ? { pid: +pid[1], uptime: +up[1] } : null;
}

/** What HAProxy's uweight is after `set server … weight P%` (HAProxy: iweight × P / 100, truncated). */
export const weightFor = (iweight: number, percent: number): number => Math.floor((iweight * percent) / 100);

type Sent = { state: BackendView['state']; admin: BackendView['admin']; weight: number | null };

/** The commands that move a server from `had` (null: unknown) to `want`. */
export function commands(key: string, want: BackendView, had: Sent | null, agent: boolean): string[] {
  const out: string[] = [];
  if (!had || had.admin !== want.admin) out.push(`set server ${key} state ${want.admin}`);
  if (!had || had.state !== want.state) out.push(`set server ${key} ${agent ? 'agent' : 'health'} ${want.state}`);
  if (want.weight !== null && (!had || had.weight !== want.weight)) out.push(`set server ${key} weight ${want.weight}%`);
  return out;
}

/** How a server in HAProxy differs from serve's view, as the state it is in (fields that agree copied from want). */
export function observed(row: ServerRow, want: BackendView): Sent {
  const admin = row.admin & ADMF_FMAINT ? 'maint' : row.admin & ADMF_FDRAIN ? 'drain' : 'ready';
  // In maintenance HAProxy stops the server whatever its checks say: nothing to compare.
  const state = want.admin === 'maint' ? want.state : row.op === 0 ? 'down' : 'up';
  const weight = want.weight === null || row.uweight === weightFor(row.iweight, want.weight) ? want.weight : -1;
  return { state, admin, weight };
}

/**
 * One exchange in prompt mode: every line sent in one write, answers split at
 * the prompt. Resolves with one answer per line (the text before its prompt).
 */
export function exchange(where: HaproxyPushConfig['socket'], lines: string[], timeoutMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = 'path' in where ? net.connect(where.path) : net.connect(where.port, where.host);
    let buf = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no answer within ${timeoutMs} ms`)); }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`prompt\n${lines.join('\n')}\nquit\n`));
    sock.on('data', (d: string) => { buf += d; });
    sock.on('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); reject(new Error(e.code ?? e.message)); });
    sock.on('close', () => {
      clearTimeout(timer);
      const parts = buf.split('\n> ');
      // parts[0] is what `prompt` printed; one part per line after it.
      if (parts.length < lines.length + 1) return reject(new Error(`connection closed after ${parts.length - 1} of ${lines.length} answers`));
      resolve(parts.slice(1, lines.length + 1));
    });
  });
}

export class HaproxyTarget extends QueuedTarget {
  readonly name: string;
  /** What HAProxy holds for each server, as last sent or read back. */
  private readonly sent = new Map<string, Sent>();
  /** Servers with an agent-check (from the last read-back). */
  private readonly agentServers = new Set<string>();
  private info: { pid: number; uptime: number } | null = null;
  private readonly reported = new Set<string>();
  /** Servers the last read-back did not find: not sent to (each was reported once). */
  private readonly absent = new Set<string>();

  constructor(readonly cfg: HaproxyPushConfig, host: PushHost) {
    super(host);
    this.name = `haproxy:${cfg.socketText}`;
  }

  /** B/S of a backend in HAProxy. */
  key(v: BackendView): string {
    const s = v.server ?? v.name;
    return s.includes('/') ? s : `${this.cfg.backend}/${s}`;
  }

  start(): void {
    this.every(this.cfg.poll, () => void this.poll());
    this.every(this.cfg.reconcile, () => { this.needReconcile = true; this.kick(); });
    this.kick();
  }

  /** The queued changes, in one connection. */
  protected async flush(): Promise<void> {
    const views = [...this.queue.values()];
    this.queue.clear();
    const lines: string[] = [];
    const after: Array<[string, Sent]> = [];
    for (const v of views) {
      const key = this.key(v);
      if (this.absent.has(key)) continue;
      const had = this.sent.get(key) ?? null;
      const cmds = commands(key, v, had, this.agentServers.has(key));
      if (!cmds.length) continue;
      lines.push(...cmds);
      after.push([key, { state: v.state, admin: v.admin, weight: v.weight }]);
    }
    if (!lines.length) return;
    try {
      await this.send(lines);
    } catch (err) {
      for (const [k] of after) this.sent.delete(k);
      throw err;
    }
    for (const [k, s] of after) this.sent.set(k, s);
  }

  /** Sends lines, counts them, and fails on any error answer (naming the first). */
  private async send(lines: string[]): Promise<string[]> {
    // A big batch (a rack failing, a restart's corrections) takes HAProxy longer: 0.2 ms more per command.
    const answers = await exchange(this.cfg.socket, lines, this.cfg.timeout + lines.length * 0.2);
    this.counters.sent += lines.length;
    const bad = answers.findIndex((a) => a.trim() !== '');
    if (bad >= 0) {
      const n = answers.filter((a) => a.trim() !== '').length;
      // An unknown server is reported by reconcile, once; other refusals are failures.
      this.log.write(`push ${this.name}: HAProxy refused ${n} of ${lines.length} commands, first "${lines[bad]}": ${answers[bad].trim().split('\n')[0]}`);
      this.counters.failures++;
    }
    return answers;
  }

  /** Notices a restart or reload by `show info`; a failure here is like any other. */
  private async poll(): Promise<void> {
    if (this.occupied || this.needReconcile) return;
    try {
      const [info] = await exchange(this.cfg.socket, ['show info'], this.cfg.timeout);
      const now = parseInfo(info);
      if (now && this.info && (now.pid !== this.info.pid || now.uptime < this.info.uptime)) {
        this.host.warn(`push ${this.name}: HAProxy restarted or reloaded (pid ${this.info.pid} → ${now.pid}): reconciling`);
        this.needReconcile = true;
      }
      if (now) this.info = now;
    } catch {
      this.needReconcile = true;
    }
    this.kick();
  }

  /** Reads every managed HAProxy backend back, and corrects what differs in one connection. */
  protected async reconcileNow(): Promise<void> {
    this.needReconcile = false;
    this.queue.clear(); // the read-back covers them
    const views = this.host.views();
    const byKey = new Map<string, BackendView>();
    for (const v of views) byKey.set(this.key(v), v);
    const backends = [...new Set([...byKey.keys()].map((k) => k.slice(0, k.indexOf('/'))))];
    const answers = await exchange(this.cfg.socket, ['show info', ...backends.map((b) => `show servers state ${b}`)], this.cfg.timeout);
    this.info = parseInfo(answers[0]) ?? this.info;
    const rows = new Map<string, ServerRow>();
    backends.forEach((b, i) => {
      const a = answers[i + 1];
      if (!/^\d+\n#/.test(a)) this.once(`backend ${b}`, `push ${this.name}: HAProxy has no backend ${b}: ${a.trim().split('\n')[0]}`);
      for (const r of parseServersState(a)) rows.set(`${r.backend}/${r.server}`, r);
    });
    this.agentServers.clear();
    this.sent.clear();
    this.absent.clear();
    const lines: string[] = [];
    const missing: string[] = [];
    let drift = 0;
    for (const [key, v] of byKey) {
      const row = rows.get(key);
      if (!row) { this.absent.add(key); if (!this.reported.has(`missing ${key}`)) { this.reported.add(`missing ${key}`); missing.push(key); } continue; }
      const agent = (row.agent & CHK_CONFIGURED) !== 0;
      if (agent) this.agentServers.add(key);
      const cmds = commands(key, v, observed(row, v), agent);
      if (cmds.length) { drift++; lines.push(...cmds); }
      this.sent.set(key, { state: v.state, admin: v.admin, weight: v.weight });
    }
    const extra: string[] = [];
    for (const key of rows.keys()) if (!byKey.has(key) && !this.reported.has(`extra ${key}`)) { this.reported.add(`extra ${key}`); extra.push(key); }
    if (missing.length) this.host.warn(`push ${this.name}: ${missing.length} servers named in the config are not in HAProxy: ${sample(missing)}`);
    if (extra.length) this.host.warn(`push ${this.name}: ${extra.length} HAProxy servers are not checked by serve (left alone): ${sample(extra)}`);
    if (lines.length) {
      try {
        await this.send(lines);
      } catch (err) {
        this.sent.clear();
        throw err;
      }
    }
    this.counters.driftCorrected += drift;
    this.counters.reconciles++;
    this.counters.lastReconcile = Date.now();
  }

  private once(key: string, m: string): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.host.warn(m);
  }
}

const sample = (names: string[]) => names.length <= 10 ? names.join(', ') : `${names.slice(0, 10).join(', ')} and ${names.length - 10} more`;
