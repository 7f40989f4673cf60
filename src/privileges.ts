// Which capabilities the kernel path needs, checked up front so the user gets
// one line naming what is missing instead of an EPERM from deep inside libbpf.
import fs from 'node:fs';
import { HalfopenError } from './errors';

const CAPS: Record<string, number> = { CAP_NET_ADMIN: 12, CAP_NET_RAW: 13, CAP_SYS_ADMIN: 21, CAP_BPF: 39 };

export function effectiveCaps(): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/** Capabilities missing for loading XDP and sending raw SYNs. */
export function missingCapabilities(eff = effectiveCaps()): string[] {
  const has = (name: string) => (eff >> BigInt(CAPS[name])) & 1n;
  const missing: string[] = [];
  if (!has('CAP_NET_ADMIN')) missing.push('CAP_NET_ADMIN');
  if (!has('CAP_NET_RAW')) missing.push('CAP_NET_RAW');
  // CAP_SYS_ADMIN implies what CAP_BPF grants.
  if (!has('CAP_BPF') && !has('CAP_SYS_ADMIN')) missing.push('CAP_BPF');
  return missing;
}

export function requirePrivileges(): void {
  const missing = missingCapabilities();
  if (missing.length)
    throw new HalfopenError('E_PRIVILEGE', `half-open probing needs ${missing.join(', ')}: run as root or grant them (setcap cap_net_admin,cap_net_raw,cap_bpf+ep)`);
}
