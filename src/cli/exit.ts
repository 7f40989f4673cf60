// Maps errors to exit codes and one stderr line, per command family.
import { HalfopenError, ErrorCode } from '../errors';

/** Input the user can fix: wrong flags, targets, interface, privileges. */
const USAGE_CODES: ReadonlySet<ErrorCode> = new Set(['E_USAGE', 'E_TARGET', 'E_EMPTY', 'E_PRIVILEGE', 'E_INTERFACE', 'E_RESOLVE', 'E_CONFIG', 'E_MERGE']);

export function isUsage(err: unknown): boolean {
  return err instanceof HalfopenError && USAGE_CODES.has(err.code);
}

export function describe(err: unknown): string {
  if (err instanceof HalfopenError) {
    let line = err.message;
    if (process.env.HALFOPEN_DEBUG && err.log) line += `\n${err.log}`;
    return line;
  }
  return (err as Error)?.stack ?? String(err);
}
