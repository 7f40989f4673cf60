import { targetError } from '../errors';

export const PORT_MIN = 1;
export const PORT_MAX = 65535;

const DIGITS = /^\d{1,5}$/;

// The one port parser: targets, -p, --source-ports and the serve config's
// ports and listen addresses all read ports through these functions.

/** Whether `n` is a port number 1-65535. Port 0 is refused: a SYN to it is never a meaningful probe. */
export const isPort = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= PORT_MIN && n <= PORT_MAX;

/** One port number 1-65535 written in decimal, or null. */
export function parsePortNumber(token: string): number | null {
  if (!DIGITS.test(token)) return null;
  const n = Number(token);
  return isPort(n) ? n : null;
}

/** `LO-HI`, both ports and LO <= HI (a source-port range), or null. */
export function parsePortRange(text: string): { lo: number; hi: number } | null {
  const m = /^(\d+)-(\d+)$/.exec(text.trim());
  const lo = m ? parsePortNumber(m[1]) : null, hi = m ? parsePortNumber(m[2]) : null;
  return lo !== null && hi !== null && lo <= hi ? { lo, hi } : null;
}

/**
 * `80,443,8000-8100` → sorted unique ports. Open-ended nmap forms are accepted:
 * `-1024` (1-1024), `60000-` (60000-65535) and `-` (every port).
 */
export function parsePorts(spec: string): number[] {
  const seen = new Uint8Array(PORT_MAX + 1);
  const tokens = spec.split(',');
  for (const raw of tokens) {
    const token = raw.trim();
    if (token === '') throw targetError(`invalid port list "${spec}": empty entry, expected PORT or LO-HI`);
    const dash = token.indexOf('-');
    if (dash < 0) {
      seen[bound(token, token, spec)] = 1;
      continue;
    }
    const loText = token.slice(0, dash).trim();
    const hiText = token.slice(dash + 1).trim();
    const lo = loText === '' ? PORT_MIN : bound(loText, token, spec);
    const hi = hiText === '' ? PORT_MAX : bound(hiText, token, spec);
    if (lo > hi) throw targetError(`invalid port range "${token}" in "${spec}": start is greater than end`);
    seen.fill(1, lo, hi + 1);
  }
  const out: number[] = [];
  for (let p = PORT_MIN; p <= PORT_MAX; p++) if (seen[p]) out.push(p);
  return out;
}

function bound(text: string, token: string, spec: string): number {
  const n = parsePortNumber(text);
  if (n === null) {
    const where = token === spec ? '' : ` in "${spec}"`;
    throw targetError(`invalid port "${token}"${where}: expected a number 1-65535 or a range LO-HI`);
  }
  return n;
}
