// Parsers for command-line values: each throws E_USAGE with one line naming
// the flag, the bad value and what was expected.
import { usageError } from '../errors';
import { parsePortRange } from '../targets/ports';

export function intOption(flag: string, min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim())) throw usageError(`invalid ${flag} "${value}": expected a whole number from ${min} to ${max}`);
    const n = Number(value);
    if (n < min || n > max) throw usageError(`invalid ${flag} "${value}": expected a whole number from ${min} to ${max}`);
    return n;
  };
}

export function portRangeOption(flag: string) {
  return (value: string): { lo: number; hi: number } => {
    const r = parsePortRange(value);
    if (!r) throw usageError(`invalid ${flag} "${value}": expected LO-HI within 1-65535`);
    return r;
  };
}

export function choiceOption<T extends string>(flag: string, choices: readonly T[]) {
  return (value: string): T => {
    if (!(choices as readonly string[]).includes(value)) throw usageError(`invalid ${flag} "${value}": expected one of ${choices.join(', ')}`);
    return value as T;
  };
}
