// A major collection right after the daemon made a burst of garbage: at
// start-up and after a reload (the reader's structured clones, and lists of
// every backend built and replaced). V8 starts a major collection when the
// old generation outgrows a limit set from its size after the last one, and
// serve's steady allocation is slow, so that garbage stays resident for long:
// at 1,000,000 backends 130 MB (RSS 1,106 MB, 976 MB after a collection).
// Node has no call for a collection without a pause (gc() is a full atomic
// one: 274 ms at that size). But V8 starts an incremental one (concurrent
// marking in steps of a few ms, a final pause of ~5 ms there) when external
// memory grows past its soft limit, 64 MB over the level at the last major
// collection. So: allocate an ArrayBuffer past that and drop it. Its pages
// are never touched, so never resident (an allocation that large is an
// mmap), and the collection it starts frees it.

/** Larger than V8's 64 MB soft limit of external memory growth, far below its hard limit (a synchronous collection). */
const NUDGE_BYTES = 96 * 2 ** 20;

/** Makes V8 start an incremental major collection now. */
export function collectGarbageSoon(): void {
  try {
    void new ArrayBuffer(NUDGE_BYTES);
  } catch {
    // No address space for it (a tight RLIMIT_AS or overcommit off): the collection comes in V8's own time.
  }
}
