// The field helpers every part of serve's config is parsed with (config.ts,
// push/config.ts, exporter/config.ts, plugin-config.ts), so an error reads the
// same wherever it is found: `FILE: PATH: expected WHAT, got VALUE`.
import { HalfopenError } from '../errors';

export class Ctx {
  constructor(readonly file: string) {}
  fail(path: string, expected: string, got: unknown): never {
    const shown = got === undefined ? 'nothing' : JSON.stringify(got);
    throw new HalfopenError('E_CONFIG', `${this.file}: ${path}: expected ${expected}, got ${shown}`);
  }
}

/** A mapping, or {} when absent. */
export function obj(c: Ctx, path: string, v: unknown): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) return c.fail(path, 'a mapping', v);
  return v as Record<string, unknown>;
}

/** Every key of `o` is one of `keys`. */
export function known(c: Ctx, path: string, o: Record<string, unknown>, keys: readonly string[] | ReadonlySet<string>): void {
  for (const k of Object.keys(o)) {
    if (keys instanceof Set ? keys.has(k) : (keys as readonly string[]).includes(k)) continue;
    c.fail(`${path}${path ? '.' : ''}${k}`, `one of the fields ${[...keys].join(', ')}`, k);
  }
}

/** "2s", "500ms", "1m", "1.5s" or a number of milliseconds, above 0; null for anything else. */
export function parseDuration(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) return v;
  if (typeof v !== 'string') return null;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(v.trim());
  if (!m) return null;
  const n = Number(m[1]) * (m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 1);
  return n > 0 ? n : null;
}

/** parseDuration, or the error naming `path` and examples of what is expected. */
export function duration(c: Ctx, path: string, v: unknown, like = '2s, 500ms or 1m'): number {
  return parseDuration(v) ?? c.fail(path, `a duration like ${like}`, v);
}
