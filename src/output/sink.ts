// Where result text goes: a file (-o) or a stream (stdout). Both count the
// bytes they accepted, report the first write error once, and never throw
// from write(): the sweep stops on the error, it does not crash on it.
import fs from 'node:fs';
import type { ByteSink } from './ordered-rows';

export interface OutputSink extends ByteSink {
  /** The first write error, if any; later writes are dropped. */
  readonly error: NodeJS.ErrnoException | null;
  /** A promise while the reader (or the disk) is behind: wait before writing more. Else null. */
  backpressure(): Promise<void> | null;
  /** Stops waiting for the reader (the run is being stopped). */
  release(): void;
  /** Resolves once every byte written so far is on disk (for a checkpoint to point at it). */
  durable(): Promise<void>;
  /** Resolves when everything written has left the process (or failed); closes files. */
  finish(): Promise<void>;
}

/** Bytes queued for the disk before the sweep waits, and the level it then waits for. */
const FILE_HIGH_WATER = 8 << 20;
const FILE_LOW_WATER = 1 << 20;
/** Queued pieces are joined into writes of up to this size. */
const FILE_WRITE_MAX = 1 << 20;

/**
 * -o FILE. Writes go through the thread pool in order, one at a time, so the
 * sweep's main thread never waits in write() (a kernel throttling dirty pages
 * on a busy disk would otherwise stall the collection of verdicts); more than
 * 8 MiB queued pushes back like a full pipe. `bytes` counts what was handed to
 * write(), `written` what the file holds. Each write() holds whole records,
 * each ending with a newline, so on an error (ENOSPC, EIO) the file is cut back
 * to the last newline that reached it: a partial file ends with a whole record.
 */
export class FileSink implements OutputSink {
  bytes: number;
  error: NodeJS.ErrnoException | null = null;
  /** Bytes the file holds (writes completed). */
  private written: number;
  private fd: number | null;
  private readonly queue: Buffer[] = [];
  private writing = false;
  /** Resolved when the queue empties or an error ends the writing. */
  private idle: Array<() => void> = [];
  private blocked: Promise<void> | null = null;
  private unblock: (() => void) | null = null;

  private constructor(readonly path: string, fd: number, bytes: number, private readonly onError: (e: NodeJS.ErrnoException) => void) {
    this.fd = fd;
    this.bytes = bytes;
    this.written = bytes;
  }

  /** Opens (creates or empties) `path`; with `keep`, opens it as is and cuts it to `keep` bytes. */
  static open(path: string, onError: (e: NodeJS.ErrnoException) => void, keep?: number): FileSink {
    const fd = fs.openSync(path, keep === undefined ? 'w' : 'r+', 0o644);
    try {
      if (keep !== undefined) fs.ftruncateSync(fd, keep);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return new FileSink(path, fd, keep ?? 0, onError);
  }

  write(text: string | Buffer): void {
    if (this.error || this.fd === null || !text.length) return;
    const buf = typeof text === 'string' ? Buffer.from(text) : text;
    this.queue.push(buf);
    this.bytes += buf.length;
    if (!this.blocked && this.bytes - this.written > FILE_HIGH_WATER) {
      this.blocked = new Promise<void>((resolve) => { this.unblock = resolve; });
    }
    this.pump();
  }

  private pump(): void {
    if (this.writing || this.fd === null || this.error) return;
    if (!this.queue.length) {
      for (const f of this.idle.splice(0)) f();
      return;
    }
    // Join small pieces: fewer system calls, each still starting at a record boundary.
    let n = 0, size = 0;
    while (n < this.queue.length && (n === 0 || size + this.queue[n].length <= FILE_WRITE_MAX)) size += this.queue[n++].length;
    const buf = n === 1 ? this.queue[0] : Buffer.concat(this.queue.slice(0, n), size);
    this.queue.splice(0, n);
    this.writing = true;
    this.writeAll(this.fd, buf, 0);
  }

  private writeAll(fd: number, buf: Buffer, done: number): void {
    fs.write(fd, buf, done, buf.length - done, this.written + done, (err, n) => {
      if (err) return this.fail(fd, buf, done, err);
      if (done + n < buf.length) return this.writeAll(fd, buf, done + n);
      this.written += buf.length;
      this.writing = false;
      if (this.blocked && this.bytes - this.written <= FILE_LOW_WATER) this.release();
      this.pump();
    });
  }

  private fail(fd: number, buf: Buffer, done: number, err: NodeJS.ErrnoException): void {
    this.error = err;
    this.writing = false;
    this.queue.length = 0;
    // Keep what reached the file up to its last whole line (the piece began at a record boundary).
    const kept = done > 0 ? buf.lastIndexOf(10, done - 1) + 1 : 0;
    try {
      fs.ftruncateSync(fd, this.written + kept);
      this.written += kept;
    } catch { /* the error reported below says why the file is short */ }
    this.bytes = this.written;
    this.release();
    for (const f of this.idle.splice(0)) f();
    this.onError(err);
  }

  /** Resolves when every queued write has completed (or failed). */
  private drained(): Promise<void> {
    if (!this.writing && !this.queue.length) return Promise.resolve();
    return new Promise<void>((resolve) => this.idle.push(resolve));
  }

  backpressure(): Promise<void> | null { return this.blocked; }

  release(): void {
    const f = this.unblock;
    this.blocked = null;
    this.unblock = null;
    f?.();
  }

  async durable(): Promise<void> {
    await this.drained();
    const fd = this.fd;
    if (fd === null || this.error) return;
    await new Promise<void>((resolve) => fs.fdatasync(fd, (err) => {
      if (err && !this.error) { this.error = err; this.onError(err); }
      resolve();
    }));
  }

  async finish(): Promise<void> {
    await this.drained();
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    try {
      fs.closeSync(fd);
    } catch (err) {
      if (!this.error) { this.error = err as NodeJS.ErrnoException; this.onError(this.error); }
    }
  }
}

/**
 * stdout. A pipe's writes are asynchronous once the pipe is full, so
 * write() returning false means: wait for 'drain' before writing more
 * (backpressure() hands the sweep that wait). EPIPE (the reader left) and
 * other errors arrive as 'error' events.
 */
export class StreamSink implements OutputSink {
  bytes = 0;
  error: NodeJS.ErrnoException | null = null;
  private blocked: Promise<void> | null = null;
  private unblock: (() => void) | null = null;

  constructor(private readonly stream: NodeJS.WriteStream, private readonly onError: (e: NodeJS.ErrnoException) => void) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (this.error) return;
      this.error = err;
      this.release();
      this.onError(err);
    });
  }

  write(text: string | Buffer): void {
    if (this.error || !text.length) return;
    this.bytes += typeof text === 'string' ? Buffer.byteLength(text) : text.length;
    if (!this.stream.write(text) && !this.blocked) {
      this.blocked = new Promise<void>((resolve) => {
        const done = () => {
          this.stream.off('drain', done);
          this.blocked = null;
          this.unblock = null;
          resolve();
        };
        this.unblock = done;
        this.stream.on('drain', done);
      });
    }
  }

  backpressure(): Promise<void> | null { return this.blocked; }

  release(): void { this.unblock?.(); }

  durable(): Promise<void> { return Promise.resolve(); /* a stream is not resumable */ }

  finish(): Promise<void> {
    if (this.error || this.stream.destroyed) return Promise.resolve();
    // The callback of an empty write runs once everything before it has been handed to the kernel.
    return new Promise<void>((resolve) => {
      const done = () => { this.stream.off('error', done); resolve(); };
      this.stream.once('error', done);
      this.stream.write('', () => done());
    });
  }
}
