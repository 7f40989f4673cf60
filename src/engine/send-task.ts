// Messages between a sweep and its sender workers (src/engine/send-worker.ts).
import type { SenderOptions, SendResult } from '../addon/addon';
import type { ErrorRecord } from '../errors';

export interface SendTask {
  runId: number;
  /** Omitted once a worker has this run's sender: serializing it (and its
   * SharedArrayBuffer) cost ~100 µs a task. */
  init?: SenderOptions;
  lo: number;
  hi: number;
  onlyUnanswered: boolean;
  /** Close the sender once this task is sent (the sweep's last sends; a retry reopens it). */
  closeAfter?: boolean;
}

/** A worker without this run's sender answers needInit; the task is resent with init. */
export type SendReply = ({ ok: true } & SendResult) | ErrorRecord | { ok: false; needInit: true };
