// `halfopen merge` on shards written here (no packets): what it proves before
// it writes, and the one line and exit 2 for each way shards can be wrong.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProbeSpace } from '../../src/targets/probe-space';
import { cidrRange } from '../../src/targets/ranges';
import { formatAddress, mustParseAddress } from '../../src/targets/address';
import { orderedSource, sweepFingerprint } from '../../src/sweep/space';
import { chooseShard } from '../../src/targets/permutation';
import { RunRecord, writeRunRecord } from '../../src/sweep/run-record';
import { runCli, startCli, collect, parseNdjson } from '../helpers/cli';

const TARGETS = ['198.18.0.0/24', '2001:2::/120'];
const PORTS = '80,81';
const COMMAND = (seed: string, i: number, n: number, out: string) =>
  ['sweep', ...TARGETS, '-p', PORTS, '--exclude', '198.18.0.128/28', '--seed', seed, '--shards', String(n), '--shard-index', String(i), '--format', 'ndjson', '-o', out];

// The verdict a shard reports for a probe: a function of the probe only, so a merge can be checked against it.
const stateOf = (ip: string, port: number) => (port === 80 ? (ip.endsWith('7') ? 'filtered' : 'open') : 'closed');

function space(): ProbeSpace {
  return new ProbeSpace({
    ranges: [cidrRange(mustParseAddress('198.18.0.0'), 24, 32), cidrRange(mustParseAddress('2001:2::'), 120, 128)],
    ports: [80, 81],
    excludes: [cidrRange(mustParseAddress('198.18.0.128'), 28, 32)],
  });
}

/** Writes shard i of n as a sweep would: ndjson rows in the shard's order and a run record. */
function writeShard(dir: string, seed: string, i: number, n: number, edit: Partial<RunRecord> = {}): string {
  const sp = space();
  const out = path.join(dir, `shard-${seed}-${i}.ndjson`);
  const meta = path.join(dir, `shard-${seed}-${i}.json`);
  const src = orderedSource(sp, BigInt(seed), chooseShard({ shards: n, shardIndex: i }, {}));
  let text = '';
  const counts = { open: 0, closed: 0, filtered: 0, unreachable: 0 };
  for (let k = 0; k < src.size; k++) {
    const p = src.at(k);
    const ip = formatAddress(p.addr);
    const state = stateOf(ip, p.port);
    counts[state]++;
    text += JSON.stringify({ ip, port: p.port, state, reason: state === 'open' ? 'syn-ack' : state === 'closed' ? 'rst' : 'no-response', rtt_ms: null, ttl: null, ts: '2026-11-29T15:00:00.000Z' }) + '\n';
  }
  fs.writeFileSync(out, text);
  writeRunRecord(meta, {
    version: 1, halfopen: '0.1.0', command: COMMAND(seed, i, n, out), seed, shard: { index: i, count: n },
    fingerprint: sweepFingerprint(sp, [cidrRange(mustParseAddress('198.18.0.128'), 28, 32)]),
    output: { path: out, format: 'ndjson', bytes: Buffer.byteLength(text) },
    start: '2026-11-29T15:00:00.000Z', end: '2026-11-29T15:00:02.000Z', probes: src.size, sent: src.size, retried: 0,
    counts, invalid: 0, duplicates: 0, xdp_mode: 'generic', send_path: 'packet', complete: true, ...edit,
  });
  return meta;
}

describe('halfopen merge', () => {
  let dir: string;
  let metas: string[];
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-merge-'));
    metas = [0, 1, 2, 3].map((i) => writeShard(dir, '7', i, 4));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('four shards merge into every probe of the space exactly once, in any order of the records', async () => {
    const r = await runCli(['merge', metas[2], metas[0], metas[3], metas[1], '--format', 'ndjson']);
    assert.equal(r.code, 0, r.stderr);
    const rows = parseNdjson(r.stdout);
    const sp = space();
    assert.equal(rows.length, sp.size);
    const keys = new Set(rows.map((x) => `${x.ip} ${x.port}`));
    assert.equal(keys.size, sp.size, 'no probe twice');
    for (let i = 0; i < sp.size; i++) {
      const p = sp.at(i);
      assert.ok(keys.has(`${formatAddress(p.addr)} ${p.port}`), `probe ${i} present`);
    }
    for (const x of rows) assert.equal(x.state, stateOf(x.ip, x.port));
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one summary line');
    assert.match(r.stderr, new RegExp(`^halfopen: ${sp.size} probes in 2\\.00 s .*merged 4 shards of seed 7 .*0 missing, 0 duplicated$`, 'm'));
  });

  test('--format csv -o FILE: the same results, re-rendered', async () => {
    const out = path.join(dir, 'merged.csv');
    const r = await runCli(['merge', ...metas, '--format', 'csv', '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    const lines = fs.readFileSync(out, 'utf8').trim().split('\n');
    assert.equal(lines.length, space().size + 1, 'header and one row per probe');
    assert.equal(r.stdout, '');
  });

  test('moved together with their records, shard files are found beside them', async () => {
    const moved = path.join(dir, 'moved');
    fs.mkdirSync(moved);
    const ms = [0, 1, 2, 3].map((i) => writeShard(moved, '9', i, 4));
    for (const m of ms) {
      const rec = JSON.parse(fs.readFileSync(m, 'utf8'));
      rec.output.path = `/nonexistent/volume/${path.basename(rec.output.path)}`;
      fs.writeFileSync(m, JSON.stringify(rec));
    }
    const r = await runCli(['merge', ...ms, '--format', 'ndjson']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseNdjson(r.stdout).length, space().size);
  });

  test('a reader that goes away (| head): exit 141 as a filter, no trace', async () => {
    const child = startCli(['merge', ...metas, '--format', 'text']);
    child.stdout!.destroy(); // the reader is gone before the first row
    const r = await collect(child);
    assert.equal(r.code, 141, r.stderr);
    assert.doesNotMatch(r.stderr, /Error|at /);
  });

  const refused = async (args: string[], re: RegExp) => {
    const r = await runCli(['merge', ...args, '--format', 'ndjson']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '', 'nothing written');
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.match(r.stderr, re);
  };

  test('a shard missing: exit 2, naming it', () => refused([metas[0], metas[1], metas[3]], /^halfopen: shard 2 of 4 missing/));
  test('a shard from another seed: exit 2, naming it', async () => {
    const other = writeShard(dir, '8', 2, 4);
    await refused([metas[0], metas[1], other, metas[3]], /shard-8-2\.json: shard 2 of 4 is from another sweep: seed 8, .* has seed 7/);
  });
  test('an incomplete shard: exit 2, naming it', async () => {
    const partial = writeShard(dir, '7', 1, 4, { complete: false });
    await refused([metas[0], partial, metas[2], metas[3]], /shard-7-1\.json: shard 1 of 4 is incomplete/);
    writeShard(dir, '7', 1, 4); // restore
  });
  test('a shard given twice: exit 2, naming both', () => refused([metas[0], metas[1], metas[1], metas[3]], /shard 1 of 4 given twice/));
  test('a shard of a sweep split differently: exit 2', async () => {
    const three = writeShard(dir, '7', 2, 3);
    await refused([metas[0], metas[1], three, metas[3]], /is from another sweep: 3 shards/);
  });
  test('a shard whose file changed after the run: exit 2', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'changed-'));
    const ms = [0, 1, 2, 3].map((i) => writeShard(sub, '7', i, 4));
    const rec = JSON.parse(fs.readFileSync(ms[3], 'utf8'));
    fs.appendFileSync(rec.output.path, fs.readFileSync(rec.output.path, 'utf8').split('\n')[0] + '\n');
    await refused(ms, /bytes, its run record .* says/);
  });
  test('a row in two shards: exit 2, naming the line', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'dup-'));
    const ms = [0, 1, 2, 3].map((i) => writeShard(sub, '7', i, 4));
    // Shard 3's first row replaced by shard 0's first row; bytes and counts kept consistent.
    const r0 = JSON.parse(fs.readFileSync(ms[0], 'utf8'));
    const rec = JSON.parse(fs.readFileSync(ms[3], 'utf8'));
    const lines = fs.readFileSync(rec.output.path, 'utf8').split('\n');
    lines[0] = fs.readFileSync(r0.output.path, 'utf8').split('\n')[0];
    fs.writeFileSync(rec.output.path, lines.join('\n'));
    rec.output.bytes = fs.statSync(rec.output.path).size;
    fs.writeFileSync(ms[3], JSON.stringify(rec));
    await refused(ms, /shard-7-3\.ndjson:1: .* has a verdict twice/);
  });
  test('a shard swept with --format csv: exit 2', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'csv-'));
    const ms = [0, 1, 2, 3].map((i) => writeShard(sub, '7', i, 4));
    const rec = JSON.parse(fs.readFileSync(ms[1], 'utf8'));
    rec.output.format = 'csv';
    fs.writeFileSync(ms[1], JSON.stringify(rec));
    await refused(ms, /merge reads ndjson shards/);
  });
});
