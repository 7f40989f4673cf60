// Backends named by host name: looked up at start and again every
// resolve_interval, or sooner when the DNS record's TTL is shorter. A name
// with no address makes only its backend down (reason unresolved), never the
// daemon. The look-up follows DNS TTLs (src/targets/resolve.ts).
import { formatAddress } from '../targets/address';
import { literal, lookupHost } from '../targets/resolve';
import type { BackendConfig } from './config';
import type { Monitor } from './monitor';

/** Host names looked up at once by the refresher. */
const RESOLVE_CONCURRENCY = 16;

/** A backend and what its host resolved to at the latest look-up. */
export interface ResolvedBackend { readonly cfg: BackendConfig; readonly addr: bigint | null; readonly unresolved: string; readonly ttlMs: number }

/**
 * A backend whose host is an address: resolved for ever. Two fields, the
 * rest from the prototype: serve keeps one per backend, and as a plain
 * object with an Infinity in it (a boxed double) it was ~24 B more each.
 */
class AddressBackend implements ResolvedBackend {
  constructor(readonly cfg: BackendConfig, readonly addr: bigint) {}
  get unresolved(): string { return ''; }
  get ttlMs(): number { return Infinity; }
}

/** The entry of a backend whose host is the address `addr`. */
export const byAddress = (cfg: BackendConfig, addr: bigint): ResolvedBackend => new AddressBackend(cfg, addr);

/**
 * The configured backends as serve keeps them between two reloads: the
 * configs (the running config's own array), each one's address, and the
 * entries of those named by host name (their look-up's TTL and error). As
 * one entry per backend it was an object of 40 bytes each beside the
 * Backend that already holds its config and address: 4 MB at 100,000
 * backends, kept for nothing but the next reload or rediscovery, which get
 * the entries back from list().
 */
export class ConfiguredSet {
  private constructor(private readonly cfgs: readonly BackendConfig[], private readonly addrs: ReadonlyArray<bigint | null>,
    private readonly named: ReadonlyMap<number, ResolvedBackend>) {}

  static readonly EMPTY = new ConfiguredSet([], [], new Map());

  /** `list`: one entry per config of `cfgs`, in its order (resolveBackends). */
  static of(cfgs: readonly BackendConfig[], list: readonly ResolvedBackend[]): ConfiguredSet {
    if (list.length !== cfgs.length) throw new Error('ConfiguredSet: one entry per configured backend');
    const addrs: Array<bigint | null> = new Array(list.length);
    const named = new Map<number, ResolvedBackend>();
    for (let i = 0; i < list.length; i++) {
      const r = list[i];
      if (r.cfg !== cfgs[i]) throw new Error('ConfiguredSet: entries out of the config\'s order');
      addrs[i] = r.addr;
      if (r.ttlMs !== Infinity || r.addr === null) named.set(i, r);
    }
    return new ConfiguredSet(cfgs, addrs, named);
  }

  get length(): number { return this.cfgs.length; }

  /** Entry i as resolveBackends made it (an address literal's anew, with the same config and address). */
  at(i: number): ResolvedBackend { return this.named.get(i) ?? byAddress(this.cfgs[i], this.addrs[i]!); }

  /** Every entry, in the config's order. */
  list(): ResolvedBackend[] {
    const out: ResolvedBackend[] = new Array(this.cfgs.length);
    for (let i = 0; i < out.length; i++) out[i] = this.at(i);
    return out;
  }
}

export interface Resolved { addr: bigint | null; ttlMs: number; error: string }

/** Looks `host` up, following DNS TTLs: the first address and how long it holds. */
export async function resolveHost(host: string, fallbackTtlMs: number): Promise<Resolved> {
  const r = await lookupHost(host, { followTtl: true, fallbackTtlMs });
  return { addr: r.addrs[0] ?? null, ttlMs: r.ttlMs, error: r.error };
}

/**
 * Looks host names up again when due: every resolve_interval, or at the
 * record's TTL when that is shorter. An address change moves the backend to
 * the new address with its history; no address makes it down (unresolved).
 */
export class Refresher {
  private due = new Map<string, number>();
  private busy = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The configs by name, for the list configs() returned last (a reload gives a new one). */
  private byName: { of: BackendConfig[]; map: Map<string, BackendConfig> } | null = null;

  constructor(private readonly monitor: Monitor, private readonly configs: () => BackendConfig[], private readonly log: (m: string) => void) {}

  /** Schedules every named backend of `list` from its first look-up. */
  plan(list: ResolvedBackend[], now = Date.now()): void {
    const next = new Map<string, number>();
    for (const r of list) {
      // An address literal resolves to itself for ever (ttlMs Infinity): only names are looked up again.
      if (r.ttlMs === Infinity || literal(r.cfg.host) !== null) continue;
      next.set(r.cfg.name, this.due.get(r.cfg.name) ?? now + Math.min(r.cfg.resolveInterval, r.ttlMs));
    }
    this.due = next;
  }

  start(): void { this.timer = setInterval(() => this.run(), 1000); this.timer.unref(); }
  stop(): void { if (this.timer) clearInterval(this.timer); this.timer = null; }

  /** A name map built once per config, not every second: at 100,000 backends it takes tens of ms. */
  private configsByName(): Map<string, BackendConfig> {
    const list = this.configs();
    if (this.byName?.of !== list) this.byName = { of: list, map: new Map(list.map((c) => [c.name, c])) };
    return this.byName.map;
  }

  private run(now = Date.now()): void {
    if (!this.due.size) return; // no backend named by host name
    let byName: Map<string, BackendConfig> | null = null;
    for (const [name, at] of this.due) {
      if (at > now || this.busy >= RESOLVE_CONCURRENCY) continue;
      byName ??= this.configsByName();
      const c = byName.get(name);
      if (!c) { this.due.delete(name); continue; }
      this.busy++;
      this.due.set(name, Infinity);
      void resolveHost(c.host, c.resolveInterval).then((r) => {
        this.busy--;
        if (!this.due.has(name)) return; // removed by a reload meanwhile
        this.due.set(name, Date.now() + Math.min(c.resolveInterval, r.ttlMs));
        const b = this.monitor.get(name);
        if (!b || b.cfg.host !== c.host) return;
        if (b.addr !== r.addr) this.log(`backend ${name}: ${c.host} ${r.addr === null ? `no longer resolves (${r.error})` : `now resolves to ${formatAddress(r.addr)}`}${b.addr === null ? '' : ` (was ${b.address})`}`);
        this.monitor.setAddress(name, r.addr, r.addr === null ? `${c.host}: ${r.error}` : '');
      });
    }
  }
}
