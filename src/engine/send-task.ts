// Messages between the engine and its sender workers (src/engine/send-worker.ts).
import type { SenderOptions, SendResult } from '../native/addon';
import type { ErrorRecord } from '../errors';

export interface SendTask {
  runId: number;
  init: SenderOptions;
  lo: number;
  hi: number;
  onlyUnanswered: boolean;
  /** When set, send these slots instead of lo..hi. */
  slots?: Uint32Array;
}

export type SendReply = ({ ok: true } & SendResult) | ErrorRecord;
