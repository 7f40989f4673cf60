// Messages between the engine and its sender workers (src/engine/send-worker.ts).
import type { SenderOptions, SendResult } from '../addon/addon';
import type { ErrorRecord } from '../errors';

export interface SendTask {
  runId: number;
  /** Omitted once a worker has this run's sender: serializing it (and its
   * SharedArrayBuffer) cost ~100 µs a task, the bulk of a health check batch. */
  init?: SenderOptions;
  lo: number;
  hi: number;
  onlyUnanswered: boolean;
  /** When set, send these slots instead of lo..hi. */
  slots?: Uint32Array;
  /** With slots: each one's SYN leaves this many ms after `from` (Date.now() ms, fractional). */
  waits?: Uint16Array;
  from?: number;
  /** Close the sender once this task is sent (the sweep's last sends; a retry reopens it). */
  closeAfter?: boolean;
}

/** A worker without this run's sender answers needInit; the task is resent with init. */
export type SendReply = ({ ok: true } & SendResult) | ErrorRecord | { ok: false; needInit: true };
