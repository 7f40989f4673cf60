import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { HalfopenError } from '../../src/errors';
import { buildSpace } from '../../src/sweep/space';
import { RunRecord, encodeRunRecord, readRunRecord, spaceFingerprint, validateRunRecord, writeRunRecord } from '../../src/sweep/run-record';

const record = (): RunRecord => ({
  version: 1, halfopen: '0.1.0', command: ['sweep', '198.18.0.0/24', '-p', '80'], seed: '18446744073709551615',
  shard: { index: 0, count: 2 }, fingerprint: 'a'.repeat(64),
  output: { path: '/tmp/out.ndjson', format: 'ndjson', bytes: 1234 },
  start: '2026-01-02T03:04:05.000Z', end: '2026-01-02T03:04:06.000Z',
  probes: 128, sent: 130, retried: 2, counts: { open: 100, closed: 20, filtered: 8, unreachable: 0 },
  invalid: 0, duplicates: 1, xdp_mode: 'generic', send_path: 'packet', complete: true,
});

describe('run record', () => {
  test('round-trips through a file with exactly the contract fields', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ho-rr-'));
    try {
      const f = path.join(dir, 'run.json');
      writeRunRecord(f, record());
      assert.deepEqual(readRunRecord(f), record());
      assert.deepEqual(Object.keys(JSON.parse(fs.readFileSync(f, 'utf8'))), Object.keys(record()));
      assert.deepEqual(fs.readdirSync(dir), ['run.json'], 'no temporary file left behind');
    } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  });

  test('names the first bad field', () => {
    for (const [patch, field] of [
      [{ seed: 12 }, 'seed'], [{ shard: { index: 2, count: 2 } }, 'shard'], [{ fingerprint: 'xyz' }, 'fingerprint'],
      [{ output: { path: null, format: 'json', bytes: 0 } }, 'output.format'], [{ complete: 'yes' }, 'complete'],
      [{ counts: { open: 1, closed: 0, filtered: 0 } }, 'counts.unreachable'],
    ] as const) {
      assert.throws(() => validateRunRecord({ ...record(), ...patch }), (e: unknown) =>
        e instanceof HalfopenError && e.message.includes(`"${field}"`));
    }
    assert.doesNotThrow(() => validateRunRecord(JSON.parse(encodeRunRecord({ ...record(), shard: null, output: { path: null, format: 'xml', bytes: 0 } }))));
  });

  test('fingerprint: the space, not its spelling', () => {
    const a = spaceFingerprint({ ranges: [{ lo: 1n, hi: 9n }], pairs: [], ports: [80, 81], excludes: [] });
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.equal(a, spaceFingerprint({ ranges: [{ lo: 1n, hi: 9n }], pairs: [], ports: [80, 81], excludes: [] }));
    assert.notEqual(a, spaceFingerprint({ ranges: [{ lo: 1n, hi: 9n }], pairs: [], ports: [80, 82], excludes: [] }));
    assert.notEqual(a, spaceFingerprint({ ranges: [{ lo: 1n, hi: 9n }], pairs: [], ports: [80, 81], excludes: [{ lo: 5n, hi: 5n }] }));
  });

  test('fingerprint: two spellings of one space, through the sweep\'s own parsing, give one fingerprint', async () => {
    const fp = async (targets: string[], opts: { ports: string; exclude?: string[] }) => {
      return (await buildSpace({ targets, ...opts })).fingerprint;
    };
    const a = await fp(['198.18.0.0/24'], { ports: '80,81' });
    // A CIDR, an explicit range, a short range and two halves; ports listed, reversed, as a range.
    for (const [targets, ports] of [
      [['198.18.0.0-198.18.0.255'], '81,80'], [['198.18.0.0-255'], '80-81'], [['198.18.0.0/25', '198.18.0.128/25'], '80,81,80'],
    ] as const) assert.equal(await fp([...targets], { ports }), a, `${targets.join(' ')} -p ${ports}`);
    // The same exclude spelled as an address and as a /32; IPv6 with and without its zeros.
    assert.equal(await fp(['198.18.0.0/24'], { ports: '80,81', exclude: ['198.18.0.5'] }), await fp(['198.18.0.0/24'], { ports: '80,81', exclude: ['198.18.0.5/32'] }));
    assert.equal(await fp(['2001:2::/120'], { ports: '80' }), await fp(['2001:0002:0000::0/120'], { ports: '80' }));
    // And a different space is a different fingerprint, however spelled.
    assert.notEqual(await fp(['198.18.0.0-198.18.0.254'], { ports: '80,81' }), a);
    assert.notEqual(await fp(['198.18.0.0/24'], { ports: '80-82' }), a);
    assert.notEqual(await fp(['198.18.0.0/24'], { ports: '80,81', exclude: ['198.18.0.5'] }), a);
  });
});
