// One sweep through an open Engine: the run's state (chunks in the probe
// table, the cursor into the probe source, counters, the first failure) and
// the loop that moves it forward. Engine owns what outlives a run (XDP, the
// table, the sender threads); a SweepRun owns what a checkpoint writes down.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Piscina } from 'piscina';
import type { NativeProgram, SenderOptions } from '../addon/addon';
import { HalfopenError, fromRecord } from '../errors';
import * as C from '../contract.generated';
import type { ProbeResult, ProbeState } from '../types';
import type { ProbeTable } from './probe-table';
import { createControl, abort, sentCount, failedCount } from './control';
import type { SendTask, SendReply } from './send-task';
import type { ProbeSink } from '../targets/probe-space';
import { RttHistogram, TimeoutPolicy, waitForSamples } from './rtt-estimator';

export interface ProbeSource {
  readonly size: number;
  at(i: number): { addr: bigint; port: number };
  /** Writes entry i to the probe table's `slot` with source port `sport` (see ProbeSpace.writeTo). */
  writeTo(table: ProbeSink, slot: number, i: number, sport: number): void;
  /** Entry i's position in the whole keyed order (the same in every shard and resumed run): picks its source address. */
  position?(i: number): number;
}

export interface Progress { total: number; sent: number; answered: number; elapsedS: number }

export interface RunHooks {
  signal?: AbortSignal;
  /** Called about every 200 ms while the run is under way. */
  onProgress?: (p: Progress) => void;
  /**
   * Chunk `seq` is final: every source entry below `end` that belongs to it
   * has had its onResult. Chunks are numbered in source order from 0 and
   * cover consecutive source ranges, but they become final in any order.
   */
  onChunkFinal?: (seq: number, end: number) => void;
  /**
   * Asked before each step of the loop: a promise means the consumer of
   * verdicts is full (a slow pipe) and the run waits for it. Senders finish
   * what they hold; verdicts meanwhile wait in the kernel's table.
   */
  backpressure?: () => Promise<void> | null;
}

export interface RunStats {
  probes: number;
  sent: number;
  failed: number;
  retried: number;
  counts: Record<ProbeState, number>;
  duplicates: number;
  invalid: number;
  elapsedS: number;
  interrupted: boolean;
  sendErrors: string[];
  counters: Record<string, number>;
  /** The wait after the last pass: fixed (--timeout MS) or chosen from the RTTs measured (auto). */
  timeout: { mode: 'fixed' | 'auto'; ms: number; samples: number; rttQuantileMs: number | null };
  /**
   * Packets the interface received during the run that the matcher never saw
   * (something ahead of it, another XDP program, dropped or redirected them);
   * null when not measured (XDP hook, or no interface statistics).
   */
  unseen: number | null;
}

/** What a SweepRun borrows from its Engine. */
export interface RunResources {
  prog: NativeProgram;
  table: ProbeTable;
  pool: Piscina;
  senders: number;
  senderInit: Omit<SenderOptions, 'control'>;
  rate: number;
  retries: number;
  /** The wait after the last pass, ms; with `autoTimeout`, its ceiling. */
  timeoutMs: number;
  /** --timeout auto: the wait after the last pass follows the RTTs measured (rtt-estimator.ts). */
  autoTimeout: TimeoutPolicy | null;
  sportLo: number;
  sportHi: number;
  runId: number;
  /**
   * Several source addresses: slot → send group (1..groups), shared with the
   * sender threads; entry i goes out in group 1 + position(i) mod groups.
   */
  groupOf: Uint16Array | null;
  groups: number;
  /** The interface's received-packet count, where unseen replies are measured (tc), else null. */
  rxPackets: (() => number | null) | null;
}

/** Probe-table slots per chunk: small enough to overlap chunks, large enough to batch. */
const BLOCK = 65536;
/** The first piece handed to idle senders (see step()). */
const FIRST_PIECE = 4096;
/** Earliest retry after a pass, whatever the RTTs seen. */
const RETRY_MIN_MS = 50;

interface Chunk {
  seq: number;
  block: number;
  slot: number;      // first slot of the block
  first: number;     // source index of the first probe
  count: number;     // probes in this chunk
  pass: number;      // 0 = first SYNs, then retries
  phase: 'send' | 'wait';
  pending: number;   // send tasks not yet finished
  passEnd: number;   // Date.now() when the current pass's last SYN was sent
  waitUntil: number; // Date.now() deadline of the current wait
  answered: number;
}

/**
 * The probe table is cut into blocks; each chunk of the source occupies one
 * block while it goes send → wait → (retry → wait)… → final, and the block is
 * refilled as soon as the chunk is final. Chunks overlap, so a sweep of any
 * size streams through a fixed table with no stall between chunks. Retries go
 * out once replies have gone quiet (a few RTTs); the full --timeout is only
 * waited after a probe's last SYN.
 */
export class SweepRun {
  private readonly ctl: BigInt64Array;
  private readonly counts: Record<ProbeState, number> = { open: 0, closed: 0, filtered: 0, unreachable: 0 };
  private readonly sendErrors = new Set<string>();
  private readonly block: number;
  private readonly emitted: Uint8Array;
  private readonly chunks: (Chunk | null)[];
  private readonly free: number[] = [];
  private readonly ports: number;
  private readonly start = process.hrtime.bigint();
  /** Next source index to hand to a chunk. */
  private next = 0;
  private nextSeq = 0;
  private retried = 0;
  private answeredTotal = 0;
  private maxRttMs = 0;
  private readonly rtts = new RttHistogram();
  /** The wait after a last pass, as last chosen. */
  private finalWaitMs: number;
  private lastProgress = 0;
  private failure: HalfopenError | null = null;

  constructor(
    private readonly res: RunResources,
    private readonly source: ProbeSource,
    private readonly onResult: (r: ProbeResult, seq: number) => void,
    private readonly hooks: RunHooks = {},
  ) {
    this.ctl = createControl(res.rate);
    const cap = res.table.capacity;
    const nblocks = Math.ceil(cap / BLOCK);
    this.block = Math.ceil(cap / nblocks);
    this.emitted = new Uint8Array(cap);
    this.chunks = new Array(nblocks).fill(null);
    for (let b = nblocks - 1; b >= 0; b--) this.free.push(b);
    this.ports = res.sportHi - res.sportLo + 1;
    this.finalWaitMs = res.timeoutMs;
  }

  private get stopping(): boolean { return !!this.hooks.signal?.aborted || !!this.failure; }

  private elapsedS(): number { return Number(process.hrtime.bigint() - this.start) / 1e9; }

  /** Resolves when every probe has a verdict, or once the senders have stopped after an abort. */
  async run(): Promise<RunStats> {
    const { signal, backpressure } = this.hooks;
    const onAbort = () => abort(this.ctl);
    signal?.addEventListener('abort', onAbort, { once: true });
    const before = this.res.prog.counters();
    const rxBefore = this.res.rxPackets?.() ?? null;
    this.res.prog.poll(); // drop events of earlier runs
    try {
      for (;;) {
        const wait = backpressure?.();
        if (wait) await wait;
        if (this.failure) abort(this.ctl);
        if (this.stopping) {
          // Wait for the senders to notice, then report what is known.
          if (this.chunks.some((c) => c && c.pending > 0)) { await sleep(2); continue; }
          this.collect(Date.now());
          const ts = new Date().toISOString();
          for (const c of this.chunks) if (c) this.retire(c, ts, false);
          break;
        }
        this.fill();
        const live = this.step(Date.now());
        if (live === 0 && this.next >= this.source.size) break;
        await sleep(2);
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (this.failure) throw this.failure;
    const after = this.res.prog.counters();
    const rxAfter = rxBefore === null ? null : this.res.rxPackets?.() ?? null;
    const delta = Object.fromEntries(C.COUNTER_NAMES.map((n, i) => [n, after[i] - before[i]]));
    return {
      probes: this.source.size,
      sent: sentCount(this.ctl),
      failed: failedCount(this.ctl),
      retried: this.retried,
      counts: { ...this.counts },
      duplicates: delta.duplicate,
      invalid: delta.bad_cookie + delta.bad_match + delta.malformed,
      elapsedS: this.elapsedS(),
      interrupted: !!signal?.aborted,
      sendErrors: [...this.sendErrors],
      counters: delta,
      timeout: {
        mode: this.res.autoTimeout ? 'auto' : 'fixed', ms: this.finalWaitMs, samples: this.rtts.samples,
        rttQuantileMs: this.res.autoTimeout ? this.rtts.quantile(this.res.autoTimeout.quantile) : null,
      },
      unseen: rxBefore === null || rxAfter === null ? null : Math.max(0, rxAfter - rxBefore - delta.packets),
    };
  }

  /** Keeps the senders busy: up to two chunks sending at once, more queued would only delay retries. */
  private fill(): void {
    const { table } = this.res;
    let sending = 0;
    for (const c of this.chunks) if (c && c.phase === 'send') sending++;
    while (this.next < this.source.size && this.free.length && sending < 2) {
      const b = this.free.pop()!;
      const count = Math.min(this.block, this.source.size - this.next);
      const c: Chunk = { seq: this.nextSeq++, block: b, slot: b * this.block, first: this.next, count, pass: 0, phase: 'send', pending: 0, passEnd: 0, waitUntil: 0, answered: 0 };
      table.clear(c.slot, c.slot + this.block);
      this.emitted.fill(0, c.slot, c.slot + this.block);
      this.chunks[b] = c;
      // While another chunk is sending, write this one whole and hand it out
      // as one task per sender (4,096-probe pieces measured 18 % slower on 1M
      // probes). With the senders idle (a run's first chunk), hand out pieces
      // of growing size as they are written: writing a whole chunk takes
      // longer than sending its first piece, and the senders would wait.
      let piece = sending === 0 ? FIRST_PIECE : count;
      for (let done = 0; done < count;) {
        const n = Math.min(piece, count - done);
        const first = this.next + done;
        for (let i = 0; i < n; i++) this.source.writeTo(table, c.slot + done + i, first + i, this.res.sportLo + ((first + i) % this.ports));
        const { groupOf, groups } = this.res, position = this.source.position;
        if (groupOf && position) for (let i = 0; i < n; i++) groupOf[c.slot + done + i] = 1 + (position(first + i) % groups);
        done += n;
        if (done === count) this.next += count;
        this.submit(c, c.slot + done - n, c.slot + done);
        piece *= 4;
      }
      sending++;
    }
  }

  /** Reads new verdicts, moves chunks through their phases; returns the chunks still live. */
  private step(now: number): number {
    const { retries, timeoutMs, autoTimeout } = this.res;
    this.collect(now);
    // auto: chosen again at every step, so replies slower than those seen so far lengthen the wait they are in.
    if (autoTimeout) this.finalWaitMs = waitForSamples(this.rtts, autoTimeout);
    let live = 0;
    for (const c of this.chunks) {
      if (!c) continue;
      if (c.phase === 'send' && c.pending === 0) {
        c.phase = 'wait';
        c.passEnd = now;
        c.waitUntil = now + (c.pass < retries ? Math.min(timeoutMs, Math.max(RETRY_MIN_MS, 4 * this.maxRttMs + 10)) : this.finalWaitMs);
      }
      if (c.phase === 'wait') {
        if (autoTimeout && c.pass >= retries) c.waitUntil = c.passEnd + this.finalWaitMs;
        if (c.answered === c.count) this.retire(c, new Date(now).toISOString(), true);
        else if (now >= c.waitUntil) {
          if (c.pass < retries) { c.pass++; this.submit(c); } else this.retire(c, new Date(now).toISOString(), true);
        }
      }
      if (this.chunks[c.block]) live++;
    }
    const { onProgress } = this.hooks;
    if (onProgress && now - this.lastProgress >= 200) {
      this.lastProgress = now;
      onProgress({ total: this.source.size, sent: sentCount(this.ctl), answered: this.answeredTotal, elapsedS: this.elapsedS() });
    }
    return live;
  }

  private collect(now: number): void {
    const idx = this.res.prog.poll();
    if (!idx.length) return;
    const ts = new Date(now).toISOString();
    const cap = this.res.table.capacity;
    for (const s of idx) if (s < cap) this.emit(s, ts);
  }

  private emit(slot: number, ts: string): void {
    if (this.emitted[slot]) return;
    const c = this.chunks[Math.floor(slot / this.block)];
    if (!c) return;
    const r = this.res.table.result(slot, ts);
    if (!r) return;
    this.emitted[slot] = 1;
    c.answered++;
    this.answeredTotal++;
    if (r.rtt_ms !== null) {
      if (r.rtt_ms > this.maxRttMs) this.maxRttMs = r.rtt_ms;
      this.rtts.add(r.rtt_ms);
    }
    this.counts[r.state]++;
    this.onResult(r, c.seq);
  }

  /** Sends slots [from, to) of the chunk (all of it by default), split over the sender threads. */
  private submit(c: Chunk, from = c.slot, to = c.slot + c.count): void {
    const per = Math.ceil((to - from) / this.res.senders);
    c.phase = 'send';
    for (let lo = from; lo < to; lo += per) {
      const task: SendTask = {
        runId: this.res.runId, init: { ...this.res.senderInit, control: this.ctl }, lo, hi: Math.min(to, lo + per), onlyUnanswered: c.pass > 0,
        // Nothing left to hand out: the senders close after this (a retry pass reopens them).
        closeAfter: this.next >= this.source.size && to === c.slot + c.count,
      };
      c.pending++;
      this.res.pool.run(task).then((r: SendReply) => {
        c.pending--;
        if (!r.ok) this.failure ??= 'needInit' in r ? new HalfopenError('E_INTERNAL', 'sender thread lost its init') : fromRecord(r);
        else if (r.failed) this.sendErrors.add(r.errname ?? `errno ${r.errno}`);
        if (r.ok && c.pass > 0) this.retried += r.sent;
      }, (e: unknown) => {
        c.pending--;
        this.failure ??= new HalfopenError('E_SEND', `sender thread failed: ${(e as Error).message}`);
      });
    }
  }

  /**
   * Reports the chunk's verdicts and frees its block. `complete`: its probes
   * have had every SYN and wait, so silence means filtered; otherwise (the run
   * was stopped) only the verdicts that arrived are reported, and the chunk
   * is not final.
   */
  private retire(c: Chunk, ts: string, complete: boolean): void {
    const { table } = this.res;
    for (let s = c.slot; s < c.slot + c.count; s++) this.emit(s, ts);
    if (complete) {
      for (let s = c.slot; s < c.slot + c.count; s++) {
        if (this.emitted[s]) continue;
        this.emitted[s] = 1;
        this.counts.filtered++;
        this.onResult({ ip: table.ip(s), port: table.port(s), state: 'filtered', reason: 'no-response', rtt_ms: null, ttl: null, ts }, c.seq);
      }
    }
    this.chunks[c.block] = null;
    this.free.push(c.block);
    if (complete) this.hooks.onChunkFinal?.(c.seq, c.first + c.count);
  }
}
