// The free slots of a probe table: a stack in an Int32Array, lowest slot on
// top. As a number[] it was 8 bytes a slot, and more when push() had grown
// it: 3 MB of heap for the 375,000 slots of 100,000 backends at 1 s with a
// 500 ms timeout.

export class SlotStack {
  private a: Int32Array;
  private n = 0;

  /** Slots 0..capacity-1, all free, 0 on top. */
  constructor(capacity = 0) {
    this.a = new Int32Array(capacity);
    this.reset(capacity);
  }

  get length(): number { return this.n; }

  /** Every slot of a table of `capacity` free again. */
  reset(capacity: number): void {
    if (this.a.length !== capacity) this.a = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.a[i] = capacity - 1 - i;
    this.n = capacity;
  }

  /** The lowest free slot, taken; -1 when none is free. */
  pop(): number { return this.n ? this.a[--this.n] : -1; }

  /** A slot given back: the next pop() returns it. */
  push(slot: number): void {
    if (this.n >= this.a.length) throw new Error('slot stack: more slots given back than the table holds');
    this.a[this.n++] = slot;
  }

  /**
   * Takes the `count` slots at the bottom of the stack out for good: after
   * reset() the highest ones of the table, which the on-demand pool keeps.
   */
  dropBottom(count: number): void {
    const k = Math.min(count, this.n);
    this.a.copyWithin(0, k, this.n);
    this.n -= k;
  }

  /** Free slots, bottom first (tests compare these). */
  *[Symbol.iterator](): IterableIterator<number> {
    for (let i = 0; i < this.n; i++) yield this.a[i];
  }
}
