// Puts result rows on an output so that there is always an exact low-water
// mark: a position P in the probe order such that every probe below P has its
// row in the output, no probe at or above P has, and the output's byte length
// at that moment is known. A checkpoint saves (P, bytes); a resumed sweep
// truncates the output to `bytes` and probes again from P, so no row is lost
// or written twice, whatever happened after the checkpoint (even SIGKILL).
//
// Why it works: the engine hands verdicts out by chunk (a consecutive range
// of the probe order, numbered from 0), in any order within and across chunks,
// and says when a chunk is final. Rows of the earliest chunk that is not yet
// final (the head) go straight out: nothing below it is missing. Rows of later
// chunks wait in memory until their chunk becomes the head. When the head
// becomes final, its last rows are written, P moves to its end, and the bytes
// written so far are exactly the rows below P. The memory held is the rows of
// the chunks in flight after the head (a few chunks of the probe table), and
// most rows still stream as they arrive: the head is also the oldest chunk,
// the one whose verdicts come first.
import type { ProbeState } from '../types';

export type StateCounts = Record<ProbeState, number>;

export interface Watermark {
  /** Every probe below this position (in probe order) has its row written; none above. */
  position: number;
  /** Output bytes at that moment. */
  bytes: number;
  /** Verdicts per state below `position` (rows left out by --open included). */
  counts: StateCounts;
}

export interface ByteSink {
  write(text: string | Buffer): void;
  /** Bytes accepted by write() so far. */
  readonly bytes: number;
}

/**
 * Rows of a chunk that is not the head. Every 64 KiB of them become one Buffer:
 * a few large off-heap pieces instead of 65,536 small strings in the old
 * generation that every major GC would trace again.
 */
interface Held { parts: Buffer[]; text: string[]; size: number; counts: StateCounts; end: number | null }

const zero = (): StateCounts => ({ open: 0, closed: 0, filtered: 0, unreachable: 0 });
const addCounts = (a: StateCounts, b: StateCounts): void => { a.open += b.open; a.closed += b.closed; a.filtered += b.filtered; a.unreachable += b.unreachable; };

/** Rows are handed to the sink in pieces of about this many characters. */
const FLUSH_AT = 65536;

export class OrderedRows {
  /** Sequence number of the earliest chunk that is not final. */
  private head = 0;
  private readonly held = new Map<number, Held>();
  private out: string[] = [];
  private outSize = 0;
  private headCounts: StateCounts = zero();
  private readonly committed: StateCounts;
  private mark: Watermark;

  /**
   * `start`: where the output stands (a fresh output after its header, or a
   * resumed one). `ordered: false` (no checkpoint to keep) writes every row as
   * it comes and keeps the mark at `start`: holding rows back costs memory,
   * up to a block of rows for each chunk in flight. `flushAt`: characters per
   * piece handed to the sink (small in tests, to exercise the pieces).
   */
  constructor(private readonly sink: ByteSink, start: { position: number; counts: StateCounts }, private readonly ordered = true, private readonly flushAt = FLUSH_AT) {
    this.committed = { ...start.counts };
    this.mark = { position: start.position, bytes: sink.bytes, counts: { ...this.committed } };
  }

  get watermark(): Watermark { return { ...this.mark, counts: { ...this.mark.counts } }; }

  /** Bytes of rows held back because an earlier chunk is not final. */
  get heldBytes(): number {
    let n = 0;
    for (const h of this.held.values()) n += h.size + h.parts.reduce((a, b) => a + b.length, 0);
    return n;
  }

  /** A row (or '' for a verdict that is counted but not shown) of chunk `seq`. */
  add(seq: number, state: ProbeState, text: string): void {
    if (seq < this.head) throw new Error(`row for chunk ${seq}, which is already final`);
    if (seq === this.head || !this.ordered) {
      this.headCounts[state]++;
      if (text) {
        this.out.push(text);
        this.outSize += text.length;
        if (this.outSize >= this.flushAt) this.flush();
      }
      return;
    }
    const h = this.holder(seq);
    h.counts[state]++;
    if (text) {
      h.text.push(text);
      h.size += text.length;
      if (h.size >= this.flushAt) {
        h.parts.push(Buffer.from(h.text.join('')));
        h.text = [];
        h.size = 0;
      }
    }
  }

  /** Chunk `seq` is final; `end` is the probe position after its last probe. */
  final(seq: number, end: number): void {
    if (seq < this.head) throw new Error(`chunk ${seq} is already final`);
    if (!this.ordered) return;
    this.holder(seq).end = end;
    if (seq !== this.head) return;
    // The head and every final chunk right after it are done: commit them in order.
    for (;;) {
      const h = this.held.get(this.head);
      if (!h || h.end === null) break;
      this.held.delete(this.head);
      this.flush();
      addCounts(this.committed, this.headCounts);
      this.mark = { position: h.end, bytes: this.sink.bytes, counts: { ...this.committed } };
      this.head++;
      // The next chunk becomes the head: what it held goes out now.
      const next = this.held.get(this.head);
      this.headCounts = next ? next.counts : zero();
      if (next) {
        for (const part of next.parts) this.sink.write(part);
        this.out = next.text;
        this.outSize = next.size;
        next.parts = [];
        next.text = [];
        next.size = 0;
        if (this.outSize >= this.flushAt) this.flush();
      }
    }
  }

  /** Verdicts per state of every row added so far, written or held. */
  received(): StateCounts {
    const total = { ...this.committed };
    addCounts(total, this.headCounts);
    for (const [seq, h] of this.held) if (seq !== this.head) addCounts(total, h.counts);
    return total;
  }

  /** Hands the head's pending rows to the sink. */
  flush(): void {
    if (!this.out.length) return;
    const text = this.out.join('');
    this.out = [];
    this.outSize = 0;
    this.sink.write(text);
  }

  /**
   * Writes every row held, in chunk order, without moving the watermark: a
   * stopped run's output shows all it knows, and a resume still starts from
   * the watermark (it truncates these rows away). Returns the counts of every
   * row ever added.
   */
  flushAll(): StateCounts {
    this.flush();
    const total = this.received();
    for (const seq of [...this.held.keys()].sort((a, b) => a - b)) {
      const h = this.held.get(seq)!;
      for (const part of h.parts) this.sink.write(part);
      if (h.text.length) this.sink.write(h.text.join(''));
      this.held.delete(seq);
    }
    this.headCounts = zero();
    this.head = Number.MAX_SAFE_INTEGER;
    return total;
  }

  private holder(seq: number): Held {
    let h = this.held.get(seq);
    if (!h) {
      h = { parts: [], text: [], size: 0, counts: seq === this.head ? this.headCounts : zero(), end: null };
      this.held.set(seq, h);
    }
    return h;
  }
}
