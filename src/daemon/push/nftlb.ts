// nftlb (ZEVENET/SKUDONET l4xnat farms, and anyone running nftlb) through its
// REST API: `Key:` header, GET /farms/NAME, PUT /farms. serve's backends are
// matched to the farm's by address and port; each tick's changes are one PUT.
// nftlb has no pid or uptime to tell a restart by, so the farm is read back
// every `poll` (and `reconcile`, whichever is shorter) and any backend whose
// state or weight differs is corrected in one PUT: that read-back is also how
// `discover: true` follows backends added to or removed from the farm.
//
// States: up → "up", down → "down", drain → "down" (out of the numgen map, so
// no new connections; established ones keep their conntrack mark), maint →
// "off". A PUT never names a backend the last read did not show: nftlb would
// create it (without an address).
import fs from 'node:fs';
import { formatAddress, parseAddress } from '../../targets/address';
import type { NftlbPushConfig } from './config';
import { BackendView, Discovered, PushHost, QueuedTarget } from './target';

export interface FarmBackend { name: string; address: string; port: number; weight: number; state: string }

/** The farm's backends from GET /farms/NAME (addresses normalised; an empty port is the farm's single virtual port). */
export function parseFarm(body: unknown, farm: string): FarmBackend[] {
  const farms = (body as { farms?: unknown })?.farms;
  const f = Array.isArray(farms) ? farms.find((x) => x && (x as { name?: unknown }).name === farm) as Record<string, unknown> | undefined : undefined;
  if (!f) throw new Error(`nftlb has no farm ${farm}`);
  const vport = /^\d+$/.test(String(f['virtual-ports'] ?? '')) ? Number(f['virtual-ports']) : 0;
  const out: FarmBackend[] = [];
  for (const b of Array.isArray(f.backends) ? f.backends as Record<string, unknown>[] : []) {
    const a = parseAddress(String(b['ip-addr'] ?? ''));
    const port = /^\d+$/.test(String(b.port ?? '')) ? Number(b.port) : vport;
    if (a === null || !port || typeof b.name !== 'string') continue;
    out.push({ name: b.name, address: formatAddress(a), port, weight: Number(b.weight ?? 1) || 1, state: String(b.state ?? 'up') });
  }
  return out;
}

/** The nftlb state for serve's view of a backend. */
export const nftlbState = (v: BackendView): 'up' | 'down' | 'off' => v.admin === 'maint' ? 'off' : v.admin === 'drain' ? 'down' : v.state;

/** nftlb's weight for a percentage of the farm's own weight (never below 1: 0 is not a weight there). */
export const nftlbWeight = (base: number, percent: number): number => Math.max(1, Math.round((base * percent) / 100));

type Change = { name: string; state: string; weight?: string };

export class NftlbTarget extends QueuedTarget {
  readonly name: string;
  /** address:port → the farm's backend, from the last read. */
  private farm = new Map<string, FarmBackend>();
  /** The farm's own weight of each backend, as first read (serve's percentages apply to it). */
  private readonly base = new Map<string, number>();
  private discovered: Discovered[] = [];
  private readonly reported = new Set<string>();

  constructor(readonly cfg: NftlbPushConfig, host: PushHost) {
    super(host);
    this.name = `nftlb:${cfg.url}/${cfg.farm}`;
  }

  start(): void {
    // Every read of the farm reconciles: nftlb has no pid to watch for a restart.
    this.every(Math.min(this.cfg.poll, this.cfg.reconcile), () => { this.needReconcile = true; this.kick(); });
    this.kick();
  }

  override discoveredBackends(): Discovered[] { return this.discovered; }

  /** The key, read at every request: a key file fixed by the operator is picked up on the next retry. */
  private key(): string {
    let k: string;
    try {
      k = fs.readFileSync(this.cfg.keyFile, 'utf8').split('\n')[0].trim();
    } catch (err) {
      throw new Error(`key_file ${this.cfg.keyFile}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    if (!k) throw new Error(`key_file ${this.cfg.keyFile}: empty`);
    return k;
  }

  private async request(method: 'GET' | 'PUT', path: string, body?: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${this.cfg.url}${path}`, {
        method, headers: { Key: this.key(), ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(this.cfg.timeout),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      if (e.message.startsWith('key_file')) throw e;
      throw new Error(`${method} ${path}: ${e.cause?.code ?? (e.name === 'TimeoutError' ? `no answer within ${this.cfg.timeout} ms` : e.message)}`);
    }
    const text = await res.text();
    if (res.status === 401) throw new Error(`${method} ${path}: 401: nftlb refused the key in ${this.cfg.keyFile}`);
    if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status}: ${text.trim().slice(0, 200)}`);
    try { return JSON.parse(text); } catch { throw new Error(`${method} ${path}: not JSON: ${text.slice(0, 80)}`); }
  }

  private change(v: BackendView, fb: FarmBackend, had: { state: string; weight: number } | null): Change | null {
    const state = nftlbState(v);
    const weight = v.weight === null ? null : nftlbWeight(this.base.get(fb.name) ?? fb.weight, v.weight);
    if (had && had.state === state && (weight === null || had.weight === weight)) return null;
    return { name: fb.name, state, ...(weight !== null ? { weight: String(weight) } : {}) };
  }

  private async put(changes: Change[]): Promise<void> {
    if (!changes.length) return;
    await this.request('PUT', '/farms', { farms: [{ name: this.cfg.farm, backends: changes }] });
    this.counters.sent += changes.length;
    const byName = new Map([...this.farm.values()].map((b) => [b.name, b]));
    for (const c of changes) {
      const fb = byName.get(c.name);
      if (fb) { fb.state = c.state; if (c.weight) fb.weight = Number(c.weight); }
    }
  }

  protected async flush(): Promise<void> {
    const views = [...this.queue.values()];
    this.queue.clear();
    const changes: Change[] = [];
    for (const v of views) {
      const fb = this.farm.get(`${v.address}:${v.port}`);
      if (!fb) continue;
      const c = this.change(v, fb, fb);
      if (c) changes.push(c);
    }
    await this.put(changes);
  }

  protected async reconcileNow(): Promise<void> {
    this.needReconcile = false;
    this.queue.clear();
    const list = parseFarm(await this.request('GET', `/farms/${encodeURIComponent(this.cfg.farm)}`), this.cfg.farm);
    this.farm = new Map(list.map((b) => [`${b.address}:${b.port}`, b]));
    for (const b of list) if (!this.base.has(b.name)) this.base.set(b.name, b.weight);
    if (this.cfg.discover) {
      const next = list.map((b) => ({ name: `${this.cfg.farm}/${b.name.replace(/[^A-Za-z0-9_.:-]/g, '_')}`, host: b.address, port: b.port }));
      if (JSON.stringify(next) !== JSON.stringify(this.discovered)) {
        this.discovered = next;
        this.host.discovered(this, next);
      }
    }
    const changes: Change[] = [];
    const missing: string[] = [];
    const views = this.host.views();
    const checked = new Set<string>();
    for (const v of views) {
      const key = `${v.address}:${v.port}`;
      checked.add(key);
      const fb = this.farm.get(key);
      if (!fb) {
        if (!this.cfg.discover && v.address && !this.reported.has(key)) { this.reported.add(key); missing.push(`${v.name} (${key})`); }
        continue;
      }
      const c = this.change(v, fb, fb);
      if (c) changes.push(c);
    }
    const extra = list.filter((b) => !checked.has(`${b.address}:${b.port}`) && !this.reported.has(`extra ${b.name}`));
    for (const b of extra) this.reported.add(`extra ${b.name}`);
    if (missing.length) this.host.warn(`push ${this.name}: ${missing.length} backends are not in the farm: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ` and ${missing.length - 10} more` : ''}`);
    if (extra.length) this.host.warn(`push ${this.name}: ${extra.length} farm backends are not checked by serve (left alone): ${extra.slice(0, 10).map((b) => b.name).join(', ')}${extra.length > 10 ? ` and ${extra.length - 10} more` : ''}`);
    await this.put(changes);
    this.counters.driftCorrected += changes.length;
    this.counters.reconciles++;
    this.counters.lastReconcile = Date.now();
  }
}
