// The lab fleet the sweep tests share: a /20 and a /116 on port 80, with a
// /24 (and a /120) dropped (filtered) and another rejected (unreachable);
// and the check that a sweep's ndjson matches the fleet's construction.
import assert from 'node:assert/strict';
import { Fleet, FleetSpec } from '../../src/fleet/fleet';
import { mustParseAddress } from '../../src/targets/address';
import { CliResult, parseNdjson } from './cli';

export const lab20x2 = (tag: string): FleetSpec => ({
  tag,
  v4: '198.18.0.0/20',
  v6: '2001:2::/116',
  open: [80],
  drop: ['198.18.4.0/24', '2001:2::400/120'],
  reject: ['198.18.5.0/24', '2001:2::500/120'],
});

/**
 * Asserts exit 0, one verdict per probe (no duplicate) and every state as the
 * fleet was built; returns the tally by `key` (the state, by default).
 */
export function assertExact(fleet: Fleet, r: CliResult, probes: number,
  key: (x: { state: string; reason: string }) => string = (x) => x.state): Record<string, number> {
  assert.equal(r.code, 0, r.stderr);
  const results = parseNdjson(r.stdout);
  assert.equal(results.length, probes, 'one verdict per probe');
  const seen = new Set<string>();
  const wrong: string[] = [];
  const tally: Record<string, number> = {};
  for (const x of results) {
    const id = `${x.ip}:${x.port}`;
    assert.ok(!seen.has(id), `duplicate verdict for ${id}`);
    seen.add(id);
    const want = fleet.truth(mustParseAddress(x.ip), x.port);
    if (x.state !== want) wrong.push(`${id} ${x.state} (want ${want})`);
    tally[key(x)] = (tally[key(x)] ?? 0) + 1;
  }
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} wrong verdicts`);
  return tally;
}
