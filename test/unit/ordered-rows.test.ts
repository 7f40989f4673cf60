// The low-water mark behind checkpoints (src/output/ordered-rows.ts): at every
// moment, the first `bytes` bytes of the output hold exactly the rows of the
// probes below `position`, each once. fast-check prints its seed on failure;
// rerun one with FC_SEED=<seed>.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ByteSink, OrderedRows } from '../../src/output/ordered-rows';
import { decodeCheckpoint, encodeCheckpoint, Checkpoint, removeStaleSaves } from '../../src/sweep/checkpoint';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ProbeState } from '../../src/types';
import { PROBE_STATES } from '../../src/contract.generated';

const seedOpt = process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {};

class MemorySink implements ByteSink {
  text = '';
  get bytes(): number { return Buffer.byteLength(this.text); }
  write(t: string | Buffer): void { this.text += String(t); }
}

/** Chunk sizes, and a schedule: a permutation of every row and every chunk's "final", rows before their final. */
const scenario = fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 8 }).chain((sizes) => {
  const events: Array<{ kind: 'row'; seq: number; index: number } | { kind: 'final'; seq: number }> = [];
  let index = 0;
  sizes.forEach((n, seq) => { for (let i = 0; i < n; i++) events.push({ kind: 'row', seq, index: index++ }); events.push({ kind: 'final', seq }); });
  return fc.tuple(fc.constant(sizes), fc.shuffledSubarray(events, { minLength: events.length, maxLength: events.length }), fc.integer({ min: 0, max: 3 }), fc.boolean(), fc.integer({ min: 1, max: 24 }));
}).map(([sizes, shuffled, start, hideClosed, flushAt]) => {
  // Stable-sort each chunk's final after its rows; rows and other chunks stay interleaved as shuffled.
  const remaining = sizes.slice();
  const out: typeof shuffled = [];
  const finals: number[] = [];
  for (const e of shuffled) {
    if (e.kind === 'final') { if (remaining[e.seq] === 0) out.push(e); else finals.push(e.seq); continue; }
    out.push(e);
    if (--remaining[e.seq] === 0 && finals.includes(e.seq)) { finals.splice(finals.indexOf(e.seq), 1); out.push({ kind: 'final', seq: e.seq }); }
  }
  return { sizes, events: out, start, hideClosed, flushAt };
});

describe('OrderedRows low-water mark', () => {
  test('the output below the mark is exactly the rows below the position, each once', () => {
    fc.assert(fc.property(scenario, ({ sizes, events, start, hideClosed, flushAt }) => {
      const ends: number[] = [];
      sizes.reduce((a, n) => { ends.push(start + a + n); return a + n; }, 0);
      const sink = new MemorySink();
      sink.write('HEADER\n');
      const rows = new OrderedRows(sink, { position: start, counts: { open: 0, closed: 0, filtered: 0, unreachable: 0 } }, true, flushAt);
      const stateOf = (i: number): ProbeState => PROBE_STATES[i % 4];
      const check = () => {
        const m = rows.watermark;
        const prefix = sink.text.slice(0, m.bytes).split('\n').filter((l) => l.startsWith('r')).map((l) => Number(l.slice(1)));
        const want: number[] = [];
        for (let i = start; i < m.position; i++) if (!(hideClosed && stateOf(i) === 'closed')) want.push(i);
        assert.deepEqual(prefix.sort((a, b) => a - b), want);
        assert.ok(sink.text.slice(0, m.bytes).startsWith('HEADER\n'));
        const counted = Object.values(m.counts).reduce((a, b) => a + b, 0);
        assert.equal(counted, m.position - start);
      };
      for (const e of events) {
        if (e.kind === 'row') {
          const st = stateOf(start + e.index);
          rows.add(e.seq, st, hideClosed && st === 'closed' ? '' : `r${start + e.index}\n`);
        } else rows.final(e.seq, ends[e.seq]);
        if (Math.random() < 0.3) rows.flush();
        check();
      }
      assert.equal(rows.watermark.position, ends[ends.length - 1], 'every chunk final: the mark is at the end');
      assert.equal(rows.heldBytes, 0);
      const total = rows.flushAll();
      assert.equal(Object.values(total).reduce((a, b) => a + b, 0), ends[ends.length - 1] - start);
      assert.equal(sink.bytes, rows.watermark.bytes, 'nothing after the mark once every chunk is final');
    }), { numRuns: 500, ...seedOpt });
  });

  test('flushAll writes every held row once, after the mark, and leaves the mark alone', () => {
    fc.assert(fc.property(scenario, fc.nat(), ({ sizes, events, start, flushAt }, cut) => {
      const ends: number[] = [];
      sizes.reduce((a, n) => { ends.push(start + a + n); return a + n; }, 0);
      const sink = new MemorySink();
      const rows = new OrderedRows(sink, { position: start, counts: { open: 0, closed: 0, filtered: 0, unreachable: 0 } }, true, flushAt);
      const upTo = cut % (events.length + 1);
      const added: number[] = [];
      for (const e of events.slice(0, upTo)) {
        if (e.kind === 'row') { rows.add(e.seq, 'open', `r${start + e.index}\n`); added.push(start + e.index); } else rows.final(e.seq, ends[e.seq]);
      }
      const mark = rows.watermark;
      const total = rows.flushAll();
      assert.deepEqual(rows.watermark, mark);
      assert.equal(total.open, added.length, 'every row counted once');
      const written = sink.text.split('\n').filter(Boolean).map((l) => Number(l.slice(1)));
      assert.deepEqual(written.slice().sort((a, b) => a - b), added.slice().sort((a, b) => a - b));
    }), { numRuns: 300, ...seedOpt });
  });

  test('unordered (no checkpoint): rows go out as they come, the mark stays put', () => {
    const sink = new MemorySink();
    const rows = new OrderedRows(sink, { position: 0, counts: { open: 0, closed: 0, filtered: 0, unreachable: 0 } }, false);
    rows.add(3, 'open', 'r3\n');
    rows.add(0, 'closed', 'r0\n');
    rows.final(3, 4);
    rows.flush();
    assert.equal(sink.text, 'r3\nr0\n');
    assert.equal(rows.heldBytes, 0);
    assert.equal(rows.watermark.position, 0);
    assert.deepEqual(rows.flushAll(), { open: 1, closed: 1, filtered: 0, unreachable: 0 });
  });

  test('a row for a chunk already final is a bug, not silently duplicated', () => {
    const rows = new OrderedRows(new MemorySink(), { position: 0, counts: { open: 0, closed: 0, filtered: 0, unreachable: 0 } });
    rows.add(0, 'open', 'r0\n');
    rows.final(0, 1);
    assert.throws(() => rows.add(0, 'open', 'r0\n'));
  });
});

describe('checkpoint encoding', () => {
  const cp = fc.record({
    version: fc.constant(1 as const), halfopen: fc.string(), cwd: fc.string(), command: fc.array(fc.string()),
    seed: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map(String),
    shard: fc.option(fc.record({ index: fc.nat(100), count: fc.integer({ min: 1, max: 101 }) }), { nil: null }),
    fingerprint: fc.stringMatching(/^[0-9a-f]{64}$/), probes: fc.nat(),
    output: fc.record({ path: fc.string(), format: fc.constantFrom('text', 'ndjson', 'csv', 'grepable', 'xml' as const) }),
    position: fc.nat(), bytes: fc.nat(), counts: fc.record({ open: fc.nat(), closed: fc.nat(), filtered: fc.nat(), unreachable: fc.nat() }),
    sent: fc.nat(), retried: fc.nat(), duplicates: fc.nat(), invalid: fc.nat(),
    start: fc.constant('2026-01-02T03:04:05.000Z'), saved: fc.constant('2026-01-02T03:04:07.000Z'), complete: fc.boolean(),
  }).map((c) => ({ ...c, probes: Math.max(c.probes, c.position) }) as Checkpoint);

  test('temporary files of a killed save are removed, nothing else', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ho-cp-'));
    try {
      for (const n of ['.a.st.123.tmp', '.a.st.x.tmp', '.a.stX.5.tmp', 'a.st', '.b.st.7.tmp']) fs.writeFileSync(path.join(dir, n), '');
      removeStaleSaves(path.join(dir, 'a.st'));
      assert.deepEqual(fs.readdirSync(dir).sort(), ['.a.st.x.tmp', '.a.stX.5.tmp', '.b.st.7.tmp', 'a.st']);
    } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  });

  test('decode(encode(c)) = c', () => {
    fc.assert(fc.property(cp, (c) => { assert.deepEqual(decodeCheckpoint(encodeCheckpoint(c), 'st'), JSON.parse(JSON.stringify(c))); }), { numRuns: 300, ...seedOpt });
  });

  test('a truncated or altered state file is refused, never half-read', () => {
    fc.assert(fc.property(cp, fc.nat(), (c, cut) => {
      const text = encodeCheckpoint(c);
      const k = cut % (text.length - 1);
      assert.throws(() => decodeCheckpoint(text.slice(0, k), 'st'), /st is not/);
    }), { numRuns: 300, ...seedOpt });
    assert.throws(() => decodeCheckpoint(JSON.stringify({ version: 1 }), 'st'), /field "halfopen"/);
  });
});
