// The push driver: collects the monitor's changes (state, admin state, and
// slow-start weight steps) and hands every target one batch per scheduler
// tick. The monitor emits its changes synchronously inside a tick, so one
// setImmediate after the first change sees the whole tick. A target's
// failures stay inside the target; nothing here waits on a balancer.
import type { Backend, Monitor } from '../monitor';
import type { ChangeEvent } from '../backend';
import type { PushConfig } from './config';
import type { BackendConfig } from '../config';
import { byAddress, ResolvedBackend } from '../resolver';
import { formatAddress, parseAddress } from '../../targets/address';
import { BackendView, Discovered, PushHost, PushTarget } from './target';
import { HaproxyTarget } from './haproxy';
import { NftlbTarget } from './nftlb';

/** How often backends in slow start are looked at for a weight step. */
const RAMP_EVERY_MS = 1000;

export function viewOf(b: Backend, now: number, server?: string): BackendView {
  const managed = b.cfg.weight !== undefined || b.cfg.slowstart > 0;
  return {
    name: b.cfg.name, address: b.address, port: b.cfg.port, state: b.reported, admin: b.admin,
    weight: managed ? b.weightNow(now) : null, ...(server ? { server } : {}),
  };
}

/** The targets a config names; a fourth balancer is one more line here and one file. */
export function targetsFor(cfg: PushConfig, host: PushHost): PushTarget[] {
  return [
    ...cfg.haproxy.map((h) => new HaproxyTarget(h, host)),
    ...cfg.nftlb.map((n) => new NftlbTarget(n, host)),
  ];
}

const targetKey = (t: PushTarget) => JSON.stringify((t as unknown as { cfg: unknown }).cfg);

export class PushDriver {
  private targets: PushTarget[] = [];
  private readonly pending = new Set<string>();
  private scheduled = false;
  private readonly ramping = new Set<string>();
  private rampTimer: NodeJS.Timeout | null = null;
  private readonly onChange = (ev: ChangeEvent, b: Backend) => this.changed(ev, b);
  private readonly host: PushHost;

  /**
   * `rediscover`: called when a target's discovered backends change; the
   * daemon re-applies its backend list with discovered() added.
   */
  constructor(private readonly monitor: Monitor, private cfg: PushConfig, warn: (m: string) => void, private readonly rediscover: () => void,
    private readonly make: (cfg: PushConfig, host: PushHost) => PushTarget[] = targetsFor) {
    this.host = {
      views: () => this.views(),
      warn,
      discovered: () => this.rediscover(),
    };
  }

  get size(): number { return this.targets.length; }

  start(): void {
    this.monitor.on('change', this.onChange);
    this.rampTimer = setInterval(() => this.ramp(), RAMP_EVERY_MS);
    this.rampTimer.unref();
    this.reconfigure(this.cfg);
  }

  /** A reload: targets whose config is unchanged stay (and reconcile, for weights that changed); the rest are replaced. */
  reconfigure(cfg: PushConfig): void {
    this.cfg = cfg;
    const next = this.make(cfg, this.host);
    const keep = new Map(this.targets.map((t) => [targetKey(t), t]));
    const out: PushTarget[] = [];
    for (const t of next) {
      const old = keep.get(targetKey(t));
      if (old) {
        keep.delete(targetKey(t));
        out.push(old);
        void old.reconcile();
      } else {
        out.push(t);
        t.start();
      }
    }
    for (const t of keep.values()) void t.close();
    this.targets = out;
    for (const b of this.monitor.list()) if (b.cfg.slowstart > 0) this.ramping.add(b.cfg.name);
  }

  /** Backends every discovering target found (the daemon checks them as if configured). */
  discovered(): Discovered[] {
    return this.targets.flatMap((t) => t.discoveredBackends());
  }

  views(now = Date.now()): BackendView[] {
    return this.monitor.list().map((b) => viewOf(b, now, this.cfg.servers[b.cfg.name]));
  }

  private changed(ev: ChangeEvent, b: Backend): void {
    if (ev.event === 'check') return;
    if (b.cfg.slowstart > 0 && ev.event === 'state' && ev.to === 'up') this.ramping.add(b.cfg.name);
    this.pending.add(b.cfg.name);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Backends in slow start: their weight steps go out like changes. */
  private ramp(now = Date.now()): void {
    for (const name of this.ramping) {
      const b = this.monitor.get(name);
      if (!b) { this.ramping.delete(name); continue; }
      this.pending.add(name);
      if (!b.rampingUp(now)) this.ramping.delete(name); // the full weight goes out once more, then it leaves the set
    }
    this.flush(now);
  }

  private flush(now = Date.now()): void {
    this.scheduled = false;
    if (!this.pending.size) return;
    const views: BackendView[] = [];
    for (const name of this.pending) {
      const b = this.monitor.get(name);
      if (b) views.push(viewOf(b, now, this.cfg.servers[name]));
    }
    this.pending.clear();
    for (const t of this.targets) t.update(views);
  }

  /** Resolves once every target has read back and corrected its balancer (tests, reload). */
  reconcileAll(): Promise<void> {
    return Promise.all(this.targets.map((t) => t.reconcile())).then(() => {});
  }

  async close(): Promise<void> {
    this.monitor.off('change', this.onChange);
    if (this.rampTimer) clearInterval(this.rampTimer);
    await Promise.all(this.targets.map((t) => t.close()));
    this.targets = [];
  }

  /** Prometheus text for every target (promtool-valid: one HELP/TYPE per family). */
  metrics(): string {
    if (!this.targets.length) return '';
    const fam: Array<[string, string, string, (t: PushTarget) => number]> = [
      ['halfopen_push_commands_total', 'counter', 'Commands (HAProxy) or backend updates (nftlb) sent to the balancer.', (t) => t.counters.sent],
      ['halfopen_push_failures_total', 'counter', 'Failed exchanges with the balancer (refused, timed out, error answers).', (t) => t.counters.failures],
      ['halfopen_push_reconciles_total', 'counter', 'Completed read-backs of the balancer\'s state.', (t) => t.counters.reconciles],
      ['halfopen_push_drift_corrected_total', 'counter', 'Servers found differing from serve\'s state at a read-back, and corrected.', (t) => t.counters.driftCorrected],
      ['halfopen_push_last_reconcile_timestamp_seconds', 'gauge', 'When the last read-back completed (0: never).', (t) => t.counters.lastReconcile / 1000],
      ['halfopen_push_connected', 'gauge', 'Whether the last exchange with the balancer worked.', (t) => (t.counters.connected ? 1 : 0)],
    ];
    const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
    let out = '';
    for (const [name, type, help, get] of fam) {
      out += `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
      for (const t of this.targets) out += `${name}{target="${esc(t.name)}"} ${get(t)}\n`;
    }
    return out;
  }
}

/**
 * `list` and the backends the targets discovered that it does not already
 * check (same address and port, or same name), with the defaults' timings.
 */
export function withDiscovered(list: ResolvedBackend[], found: Discovered[], template: Omit<BackendConfig, 'name' | 'host' | 'port'>): ResolvedBackend[] {
  if (!found.length) return list;
  const names = new Set(list.map((r) => r.cfg.name));
  const targets = new Set(list.filter((r) => r.addr !== null).map((r) => `${formatAddress(r.addr!)}:${r.cfg.port}`));
  const out = [...list];
  for (const d of found) {
    const addr = parseAddress(d.host);
    const key = addr === null ? '' : `${formatAddress(addr)}:${d.port}`;
    if (addr === null || names.has(d.name) || targets.has(key)) continue;
    names.add(d.name);
    targets.add(key);
    out.push(byAddress({ ...template, labels: { ...template.labels }, name: d.name, host: d.host, port: d.port }, addr));
  }
  return out;
}

/**
 * The discovering targets' backends, read once before the probe engine opens
 * (it finds its interface and routes by the addresses it will check). A
 * balancer that does not answer within its timeout is a warning and no
 * backends; the target keeps trying once serve runs.
 */
export async function initialDiscovery(cfg: PushConfig, warn: (m: string) => void): Promise<Discovered[]> {
  const found: Discovered[] = [];
  await Promise.all(cfg.nftlb.filter((n) => n.discover).map(async (n) => {
    const t = new NftlbTarget(n, { views: () => [], warn, discovered: (_t, l) => { found.push(...l); } });
    await t.reconcile();
    await t.close();
  }));
  return found;
}
