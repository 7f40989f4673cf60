// What serve keeps of its configured backends between reloads (resolver.ts
// ConfiguredSet): the same entries back as resolveBackends made them, an
// address literal's rebuilt from its config and address, a host name's as
// its look-up left it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseConfig } from '../../src/daemon/config';
import { ConfiguredSet, ResolvedBackend, byAddress } from '../../src/daemon/resolver';
import { parseAddress } from '../../src/targets/address';

const config = (hosts: string[]) => parseConfig(['backends:', ...hosts.map((h, i) => `  - { name: b${i}, host: "${h}", port: ${80 + i} }`)].join('\n') + '\n');

test('every entry comes back with its config, address, unresolved text and TTL', () => {
  const host = fc.oneof(
    fc.integer({ min: 0, max: 65535 }).map((n) => `198.18.${n >> 8}.${n & 255}`),
    fc.integer({ min: 0, max: 65535 }).map((n) => `2001:2::${n.toString(16)}`),
    fc.integer({ min: 0, max: 99 }).map((n) => `svc${n}.example`),
  );
  const out = fc.check(fc.property(fc.uniqueArray(host, { minLength: 1, maxLength: 40 }), fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }), (hosts, resolves) => {
    const cfg = config(hosts);
    const list: ResolvedBackend[] = cfg.backends.map((b, i) => {
      const literal = parseAddress(b.host);
      if (literal !== null) return byAddress(b, literal);
      return resolves[i] ? { cfg: b, addr: parseAddress(`198.19.0.${i}`), unresolved: '', ttlMs: 30_000 } : { cfg: b, addr: null, unresolved: `${b.host}: ENOTFOUND`, ttlMs: 5_000 };
    });
    const set = ConfiguredSet.of(cfg.backends, list);
    if (set.length !== list.length) return false;
    const again = set.list();
    for (let i = 0; i < list.length; i++) {
      for (const r of [again[i], set.at(i)]) {
        if (r.cfg !== list[i].cfg || r.addr !== list[i].addr || r.unresolved !== list[i].unresolved || r.ttlMs !== list[i].ttlMs) return false;
      }
    }
    return true;
  }), { numRuns: 300 });
  if (out.failed) assert.fail(`${fc.defaultReportMessage(out)}\nrerun with seed ${out.seed}, path ${out.counterexamplePath}`);
});

test('a list that is not the config\'s, entry for entry, is refused', () => {
  const cfg = config(['198.18.0.1', '198.18.0.2']);
  const list = cfg.backends.map((b) => byAddress(b, parseAddress(b.host)!));
  assert.throws(() => ConfiguredSet.of(cfg.backends, list.slice(1)), /one entry per configured backend/);
  assert.throws(() => ConfiguredSet.of(cfg.backends, [list[1], list[0]]), /out of the config's order/);
  assert.equal(ConfiguredSet.EMPTY.length, 0);
  assert.deepEqual(ConfiguredSet.EMPTY.list(), []);
});
