// Privileged tiers skip, with the reason, where the kernel path cannot run.
import { execFileSync } from 'node:child_process';
import { missingCapabilities } from '../../src/privileges';

export function bpfSkipReason(): string | false {
  const missing = missingCapabilities();
  if (missing.length) return `needs ${missing.join(', ')} (run as root)`;
  return false;
}

export function netnsSkipReason(): string | false {
  const r = bpfSkipReason();
  if (r) return r;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'needs iproute2 and nftables (scripts/setup.sh installs them)';
  }
  return false;
}
