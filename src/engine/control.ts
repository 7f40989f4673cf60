// Shared send-control block: one SharedArrayBuffer read and written by every
// sender thread (native/addon/sender.cc) and the main thread. The slots are
// enum ho_control of bpf/halfopen.h, through the generated contract.
import {
  HO_CTL_TAT_PS as CTL_TAT_PS, HO_CTL_INTERVAL_PS as CTL_INTERVAL_PS, HO_CTL_ABORT as CTL_ABORT,
  HO_CTL_SENT as CTL_SENT, HO_CTL_BASE_NS as CTL_BASE_NS, HO_CTL_FAILED as CTL_FAILED, HO_CTL_SLOTS as CTL_SLOTS,
} from '../contract.generated';

export { CTL_TAT_PS, CTL_INTERVAL_PS, CTL_ABORT, CTL_SENT, CTL_BASE_NS, CTL_FAILED, CTL_SLOTS };

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
