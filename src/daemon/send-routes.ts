// Per-backend `source` and `mark` (serve config): checks that each backend's
// SYNs can leave the way its config says and that the replies come back where
// the matcher listens. Run before a config is applied, at start and on reload.
import os from 'node:os';
import { HalfopenError } from '../errors';
import { BackendConfig } from './config';
import { MAX_SEND_GROUPS, routeTo } from '../engine/route';
import { formatAddress, isV4, parseAddress } from '../targets/address';

/**
 * The interface the engine will match replies on, found as the engine finds
 * it (probe.interface, else the route to the first backend), so the check
 * runs before anything is attached.
 */
export function matcherInterface(list: ReadonlyArray<{ addr: bigint | null }>, iface?: string): string {
  const first = list.find((b) => b.addr !== null)?.addr;
  if (iface || first == null) return iface ?? '';
  return routeTo(formatAddress(first)).dev;
}

/** Same source and mark: a reload may keep the backend's slots as they are. */
export const sameRoute = (a: BackendConfig, b: BackendConfig): boolean => a.source === b.source && a.mark === b.mark;

/** The addresses of this host (this network namespace). */
function localAddresses(): Set<bigint> {
  const out = new Set<bigint>();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      const v = parseAddress(a.address.replace(/%.*$/, ''));
      if (v !== null) out.add(v);
    }
  }
  return out;
}

/**
 * Throws one E_CONFIG line for the first backend whose source is not an
 * address of this host, is of the other family than the backend's address,
 * or whose SYNs would leave (by source or mark, through policy routing) by
 * another interface than `dev`, where the matcher waits for the replies.
 * One route lookup per distinct (family, source, mark); `matcherDev` is
 * only asked for when some backend has a source or mark.
 */
export function checkSendRoutes(list: ReadonlyArray<{ cfg: BackendConfig; addr: bigint | null }>, matcherDev: string | (() => string)): void {
  // A name that does not resolve (yet) has no route to check; its family is
  // checked here once it resolves at a start or reload.
  const marked = list.filter((b): b is { cfg: BackendConfig; addr: bigint } => b.addr !== null && (b.cfg.source !== undefined || !!b.cfg.mark));
  if (!marked.length) return;
  const dev = typeof matcherDev === 'string' ? matcherDev : matcherDev();
  const local = localAddresses();
  const seen = new Set<string>();
  const pairs = new Set<string>();
  for (const { cfg: b, addr } of marked) {
    let src: bigint | null = null;
    if (b.source !== undefined) {
      src = parseAddress(b.source);
      if (src === null || !local.has(src))
        throw new HalfopenError('E_CONFIG', `backend ${b.name}: source ${b.source} is not an address of this host (ip addr)`);
      if (isV4(src) !== isV4(addr))
        throw new HalfopenError('E_CONFIG', `backend ${b.name}: source ${b.source} is ${isV4(src) ? 'IPv4' : 'IPv6'} but ${formatAddress(addr)} is ${isV4(addr) ? 'IPv4' : 'IPv6'}`);
    }
    pairs.add(`${b.source ?? ''}/${b.mark ?? 0}`);
    const key = `${isV4(addr) ? 4 : 6}/${b.source ?? ''}/${b.mark ?? 0}`;
    if (seen.has(key)) continue;
    seen.add(key);
    let r;
    try {
      r = routeTo(formatAddress(addr), { src: b.source, mark: b.mark });
    } catch (err) {
      throw new HalfopenError('E_CONFIG', `backend ${b.name}: ${(err as Error).message}`);
    }
    if (r.dev !== dev) {
      const how = [b.source !== undefined ? `from ${b.source}` : '', b.mark ? `with mark 0x${b.mark.toString(16)}` : ''].filter(Boolean).join(' ');
      throw new HalfopenError('E_CONFIG', `backend ${b.name}: SYNs ${how} route via ${r.dev}, but replies are matched on ${dev}: expected a source and mark that leave by ${dev}`);
    }
  }
  if (pairs.size > MAX_SEND_GROUPS) throw new HalfopenError('E_CONFIG', `${pairs.size} distinct source/mark pairs: expected at most ${MAX_SEND_GROUPS}`);
}
