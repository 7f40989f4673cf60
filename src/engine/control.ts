// Shared send-control block: one SharedArrayBuffer read and written by every
// sender thread (native/src/sender.cc, enum Control) and the main thread.
export const CTL_TAT_PS = 0;      // pacing: theoretical arrival time, ps since CTL_BASE_NS
export const CTL_INTERVAL_PS = 1; // pacing: picoseconds per packet, 0 = unpaced
export const CTL_ABORT = 2;       // non-zero: senders stop at the next batch
export const CTL_SENT = 3;        // packets handed to the kernel, all senders
export const CTL_BASE_NS = 4;     // CLOCK_MONOTONIC origin of CTL_TAT_PS
export const CTL_FAILED = 5;      // packets the kernel refused, all senders
export const CTL_SLOTS = 8;

export function createControl(rate: number): BigInt64Array {
  const ctl = new BigInt64Array(new SharedArrayBuffer(CTL_SLOTS * 8));
  setRate(ctl, rate);
  ctl[CTL_BASE_NS] = process.hrtime.bigint();
  return ctl;
}

/** rate in packets per second; 0 = unpaced. */
export function setRate(ctl: BigInt64Array, rate: number): void {
  Atomics.store(ctl, CTL_INTERVAL_PS, rate > 0 ? BigInt(Math.max(1, Math.round(1e12 / rate))) : 0n);
}

export const sentCount = (ctl: BigInt64Array): number => Number(Atomics.load(ctl, CTL_SENT));
export const failedCount = (ctl: BigInt64Array): number => Number(Atomics.load(ctl, CTL_FAILED));
export const abort = (ctl: BigInt64Array): void => { Atomics.store(ctl, CTL_ABORT, 1n); };
