// Piscina worker of a sweep: owns one native Sender (sockets + mmapped
// tables) per run and sends the probe-index ranges it is given. Failures
// come back as plain ErrorRecords, because structured clone would strip a
// HalfopenError's fields.
import { native, NativeSender } from '../addon/addon';
import { toRecord } from '../errors';
import type { SendTask, SendReply } from './send-task';

let current: { runId: number; sender: NativeSender } | null = null;

function closeSender(): void {
  current?.sender.close();
  current = null;
}

function handler(task: SendTask | { close: true }): SendReply | null {
  try {
    if ('close' in task) {
      closeSender();
      return null;
    }
    if (!current || current.runId !== task.runId) {
      if (!task.init) return { ok: false, needInit: true };
      current?.sender.close();
      current = { runId: task.runId, sender: new native.Sender(task.init) };
    }
    const r = current.sender.send(task.lo, task.hi, task.onlyUnanswered);
    // The sweep's last sends: release the sockets now, while the main thread
    // waits for replies, not in the process's exit (see Sender::Release).
    if (task.closeAfter) closeSender();
    return { ok: true, ...r };
  } catch (err) {
    return toRecord(err);
  }
}

export = handler;
