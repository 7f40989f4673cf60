// Unit tier: collectGarbageSoon makes V8 run a major collection, incrementally
// (marking steps, then the major pause), and promptly, and leaves nothing
// behind: the ArrayBuffer it allocates is freed by that collection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { collectGarbageSoon } from '../../src/daemon/collect';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a major collection follows at once, by incremental marking, and the nudge is freed', async () => {
  const kinds: number[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) kinds.push((e as unknown as { detail: { kind: number } }).detail.kind);
  });
  obs.observe({ entryTypes: ['gc'] });
  try {
    // Garbage in the old generation, as start-up leaves it, and a quiet moment for V8.
    let junk: unknown[] | null = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `backend-${i}` }));
    await sleep(200);
    junk = null;
    await sleep(200);
    kinds.length = 0;
    const external = process.memoryUsage().arrayBuffers;
    collectGarbageSoon();
    // Bounded: 40 turns of 50 ms.
    for (let k = 0; k < 40 && !kinds.includes(constants.NODE_PERFORMANCE_GC_MAJOR); k++) await sleep(50);
    assert.ok(kinds.includes(constants.NODE_PERFORMANCE_GC_MAJOR), `no major collection within 2 s (${JSON.stringify(kinds)})`);
    assert.ok(kinds.includes(constants.NODE_PERFORMANCE_GC_INCREMENTAL), `the collection was not incremental (${JSON.stringify(kinds)})`);
    assert.ok(process.memoryUsage().arrayBuffers < external + 2 ** 20, 'the nudge is still allocated after the collection');
    assert.equal(junk, null);
  } finally {
    obs.disconnect();
  }
});
