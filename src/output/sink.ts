// Where result text goes: a file (-o) or a stream (stdout). Both count the
// bytes they accepted, report the first write error once, and never throw
// from write(): the sweep stops on the error, it does not crash on it.
import fs from 'node:fs';
import type { ByteSink } from './ordered-rows';

export interface OutputSink extends ByteSink {
  /** The first write error, if any; later writes are dropped. */
  readonly error: NodeJS.ErrnoException | null;
  /** A promise while the reader is behind (wait before writing more), else null. */
  backpressure(): Promise<void> | null;
  /** Stops waiting for the reader (the run is being stopped). */
  release(): void;
  /** Makes what was written durable enough for a checkpoint to point at it. */
  sync(): void;
  /** Resolves when everything written has left the process (or failed); closes files. */
  finish(): Promise<void>;
}

/**
 * -o FILE. Writes are synchronous: a file never pushes back, the byte count
 * is then exactly what the file holds (what a checkpoint needs), and an error
 * (ENOSPC, EIO) is known at the write that caused it. Each write() holds whole
 * records, each ending with a newline, so on an error the file is cut back to
 * the last newline that reached it: a partial file ends with a whole record.
 */
export class FileSink implements OutputSink {
  bytes: number;
  error: NodeJS.ErrnoException | null = null;
  private fd: number | null;

  private constructor(readonly path: string, fd: number, bytes: number, private readonly onError: (e: NodeJS.ErrnoException) => void) {
    this.fd = fd;
    this.bytes = bytes;
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
    let done = 0;
    try {
      while (done < buf.length) done += fs.writeSync(this.fd, buf, done, buf.length - done, this.bytes + done);
    } catch (err) {
      this.error = err as NodeJS.ErrnoException;
      // Keep what reached the file up to its last whole line (every format's records end with one).
      const kept = done > 0 ? buf.lastIndexOf(10, done - 1) + 1 : 0;
      try {
        fs.ftruncateSync(this.fd, this.bytes + kept);
        this.bytes += kept;
      } catch { /* the error below says why the file is short */ }
      this.onError(this.error);
      return;
    }
    this.bytes += buf.length;
  }

  backpressure(): null { return null; }
  release(): void { /* never waits */ }

  sync(): void {
    if (this.fd === null || this.error) return;
    try {
      fs.fdatasyncSync(this.fd);
    } catch (err) {
      this.error = err as NodeJS.ErrnoException;
      this.onError(this.error);
    }
  }

  async finish(): Promise<void> {
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

  sync(): void { /* nothing to make durable: a stream is not resumable */ }

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
