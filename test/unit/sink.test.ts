import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { FileSink, StreamSink } from '../../src/output/sink';

/** A writable whose reader takes a chunk only when told to. */
function slowStream(): { stream: NodeJS.WriteStream; take: () => void; got: string[] } {
  const got: string[] = [];
  const waiting: Array<() => void> = [];
  const stream = new Writable({
    highWaterMark: 16,
    write(chunk, _enc, cb) { got.push(String(chunk)); waiting.push(cb); },
  }) as unknown as NodeJS.WriteStream;
  return { stream, got, take: () => waiting.shift()?.() };
}

describe('StreamSink', () => {
  test('a full stream pushes back until the reader drains it; nothing is dropped', async () => {
    const { stream, take, got } = slowStream();
    const sink = new StreamSink(stream, () => assert.fail('no error expected'));
    sink.write('0123456789abcdefXYZ\n');
    const wait = sink.backpressure();
    assert.ok(wait, 'backpressure once past the high-water mark');
    take();
    await wait;
    assert.equal(sink.backpressure(), null);
    sink.write('second\n');
    const done = sink.finish();
    take(); take();
    await done;
    assert.equal(got.join(''), '0123456789abcdefXYZ\nsecond\n');
    assert.equal(sink.bytes, 27);
  });

  test('EPIPE: reported once, the waiting run is released, later writes are dropped', async () => {
    const { stream } = slowStream();
    const errors: string[] = [];
    const sink = new StreamSink(stream, (e) => errors.push(e.code!));
    sink.write('x'.repeat(64));
    const wait = sink.backpressure();
    assert.ok(wait);
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    stream.emit('error', epipe);
    stream.emit('error', epipe);
    await wait;
    assert.deepEqual(errors, ['EPIPE']);
    sink.write('more');
    assert.equal(sink.bytes, 64);
    await sink.finish();
  });

  test('release() lets a run stop while the reader sleeps', async () => {
    const { stream, got } = slowStream();
    const sink = new StreamSink(stream, () => assert.fail('no error expected'));
    sink.write('x'.repeat(64));
    const wait = sink.backpressure();
    assert.ok(wait, 'the reader has taken nothing: the sink pushes back');
    // The reader never drains: only release() can end the wait (a bounded one here, not the test runner's).
    let released = false;
    void wait.then(() => { released = true; });
    await new Promise((r) => setImmediate(r));
    assert.equal(released, false, 'still waiting while the reader sleeps');
    sink.release();
    const outcome = await Promise.race([wait.then(() => 'released'), new Promise((r) => setTimeout(() => r('still blocked'), 2000))]);
    assert.equal(outcome, 'released');
    assert.equal(sink.backpressure(), null, 'no wait left after release');
    assert.equal(sink.bytes, 64);
    assert.deepEqual(got, ['x'.repeat(64)], 'what was written before stays written');
  });
});

describe('FileSink', () => {
  test('writes in order off the main thread; a long queue pushes back until the disk catches up', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ho-sink-'));
    try {
      const f = path.join(dir, 'out');
      const sink = FileSink.open(f, () => assert.fail('no error expected'));
      const row = `${'x'.repeat(99)}\n`;
      let wait: Promise<void> | null = null;
      let n = 0;
      for (; n < 200_000 && !wait; n++) { sink.write(row.repeat(100)); wait = sink.backpressure(); }
      assert.ok(wait, 'more than 8 MiB queued pushes back');
      await wait;
      assert.equal(sink.backpressure(), null);
      await sink.durable();
      await sink.finish();
      assert.equal(fs.statSync(f).size, n * 100 * 100);
      assert.equal(sink.bytes, n * 100 * 100);
    } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  });

  test('counts bytes, resumes by cutting back to a saved length', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ho-sink-'));
    try {
      const f = path.join(dir, 'out');
      const a = FileSink.open(f, () => assert.fail('no error expected'));
      a.write('one\n'); a.write('two\n'); a.write('three\n');
      assert.equal(a.bytes, 14);
      await a.durable();
      await a.finish();
      const b = FileSink.open(f, () => assert.fail('no error expected'), 8);
      b.write('THREE\n');
      await b.finish();
      assert.equal(fs.readFileSync(f, 'utf8'), 'one\ntwo\nTHREE\n');
    } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  });
});
