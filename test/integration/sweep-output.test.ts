// Integration tier: a sweep's output delivered whole through real pipes
// (`| cat > f`, a reader that sleeps first, `| head`), into a full
// filesystem, and across SIGKILL/SIGINT with --checkpoint/--resume, always
// compared with the fleet's construction. Every namespace, mount and process
// made here is removed in `finally`/`after`.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet, FleetSpec } from '../../src/fleet/fleet';
import { mustParseAddress } from '../../src/targets/address';
import { CSV_HEADER, OUTPUT_FORMATS, OutputFormat } from '../../src/output';
import { readRunRecord } from '../../src/sweep/run-record';
import { readCheckpoint } from '../../src/sweep/checkpoint';
import { netnsSkipReason } from '../helpers/privileges';
import { MAIN, ROOT, collect, startCli } from '../helpers/cli';
import { waitFor } from '../helpers/serve';

const skip = netnsSkipReason() || (hasXmllint() ? false : 'needs xmllint (libxml2-utils; scripts/setup.sh installs it)');

function hasXmllint(): boolean {
  try { execFileSync('xmllint', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

const SPEC: FleetSpec = {
  tag: 'output',
  v4: '198.18.0.0/16',
  open: [80, 83, 90],
  drop: ['198.18.4.0/24'],
  reject: ['198.18.5.0/24'],
};

/** 1,536 probes: three /24s × two ports. */
const SMALL = ['198.18.4.0/24', '198.18.5.0/24', '198.18.6.0/24', '-p', '80,81'];
/** 65,536 probes: a /16 × one port. */
const MEDIUM = ['198.18.0.0/16', '-p', '80'];
/** 1,048,576 probes: a /16 × 16 ports. */
const LARGE = ['198.18.0.0/16', '-p', '80-95'];
const COMMON = ['--rate', '100000', '--timeout', '500', '--no-progress'];

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

interface ShellResult { code: number | null; rc: number; stderr: string }

/**
 * Runs `halfopen ARGS | TAIL` in the prober namespace through bash; `rc` is
 * halfopen's own exit status (PIPESTATUS[0]), stderr is halfopen's.
 */
async function pipeline(fleet: Fleet, dir: string, args: string[], tail: string, timeoutMs = 120_000): Promise<ShellResult> {
  const cmd = `${q(process.execPath)} ${q(MAIN)} ${args.map(q).join(' ')} 2> ${q(path.join(dir, 'err'))} | ${tail}; echo "\${PIPESTATUS[0]}" > ${q(path.join(dir, 'rc'))}`;
  const child = spawn('ip', ['netns', 'exec', fleet.prober, 'bash', '-c', cmd], { stdio: 'ignore', cwd: ROOT });
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (c) => { clearTimeout(timer); resolve(c); });
  });
  return { code, rc: Number(fs.readFileSync(path.join(dir, 'rc'), 'utf8')), stderr: fs.readFileSync(path.join(dir, 'err'), 'utf8') };
}

interface Row { ip: string; port: number; state: string }

/** Parses and checks a whole output file of `format`; returns its rows. */
function parseOutput(format: OutputFormat, file: string): Row[] {
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.endsWith('\n'), `${format}: ends with a whole line`);
  const lines = text.slice(0, -1).split('\n');
  switch (format) {
    case 'ndjson':
      return lines.map((l) => JSON.parse(l) as Row);
    case 'csv': {
      assert.equal(lines[0], CSV_HEADER);
      return lines.slice(1).map((l) => {
        const f = l.split(',');
        assert.equal(f.length, 7, `csv row "${l}"`);
        return { ip: f[0], port: Number(f[1]), state: f[2] };
      });
    }
    case 'text': {
      assert.match(lines[0], /^ADDRESS\s+PORT\s+STATE/);
      return lines.slice(1).map((l) => {
        const [ip, port, state] = l.split(/\s+/);
        return { ip, port: Number(port), state };
      });
    }
    case 'grepable': {
      assert.match(lines[0], /^# halfopen .* scan initiated/);
      assert.match(lines[lines.length - 1], /^# halfopen done at .* probes/, 'grepable: closing line');
      return lines.slice(1, -1).map((l) => {
        const m = /^Host: (\S+) \(\)\tPorts: (\d+)\/(\w+)\/tcp\//.exec(l);
        assert.ok(m, `grepable row "${l}"`);
        return { ip: m[1], port: Number(m[2]), state: m[3] };
      });
    }
    case 'xml': {
      execFileSync('xmllint', ['--noout', file], { stdio: ['ignore', 'ignore', 'pipe'] });
      const rows: Row[] = [];
      const re = /<address addr="([^"]+)"[^>]*\/><ports><port protocol="tcp" portid="(\d+)"><state state="(\w+)"/g;
      for (let m; (m = re.exec(text));) rows.push({ ip: m[1], port: Number(m[2]), state: m[3] });
      assert.equal(rows.length, (text.match(/<host /g) ?? []).length);
      return rows;
    }
  }
}

/** Every probe exactly once, each with the state the fleet was built to give. */
function assertExact(fleet: Fleet, rows: Row[], want: number, what: string): void {
  const seen = new Set<string>();
  let dup = 0, wrong = 0;
  const examples: string[] = [];
  for (const r of rows) {
    const k = `${r.ip}:${r.port}`;
    if (seen.has(k)) dup++;
    seen.add(k);
    const truth = fleet.truth(mustParseAddress(r.ip), r.port);
    if (r.state !== truth) { wrong++; if (examples.length < 5) examples.push(`${k} ${r.state} (want ${truth})`); }
  }
  assert.equal(dup, 0, `${what}: duplicates`);
  assert.equal(seen.size, want, `${what}: ${want - seen.size} missing`);
  assert.deepEqual(examples, [], `${what}: ${wrong} wrong verdicts`);
}

/** The stderr of a run that failed: exactly one line, no stack trace. */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `one line on stderr, got:\n${stderr}`);
  assert.doesNotMatch(stderr, /\n\s+at |Error:|node:internal/);
  return lines[0];
}

describe('sweep output delivered whole', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  before(async () => {
    fleet = await Fleet.create(SPEC);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ho-output-'));
  });
  after(() => {
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const [size, targets] of [[1536, SMALL], [65536, MEDIUM]] as const) {
    for (const format of OUTPUT_FORMATS) {
      test(`${format}, ${size} probes: | cat > f, a slow reader, | head -n 5`, async () => {
        const args = ['sweep', ...targets, ...COMMON, '--format', format];
        const f = path.join(dir, `out.${format}`);

        const r = await pipeline(fleet, dir, args, `cat > ${q(f)}`);
        assert.equal(r.rc, 0, r.stderr);
        assertExact(fleet, parseOutput(format, f), size, `${format} | cat`);

        // The reader sleeps while halfopen fills the pipe: the sweep must wait, not drop.
        const slow = await pipeline(fleet, dir, args, `(sleep 2; cat > ${q(f)})`);
        assert.equal(slow.rc, 0, slow.stderr);
        assertExact(fleet, parseOutput(format, f), size, `${format} | slow reader`);

        const h = await pipeline(fleet, dir, args, `head -n 5 > ${q(f)}`);
        assert.equal(h.rc, 141, `exit like a filter killed by SIGPIPE; stderr: ${h.stderr}`);
        assert.equal(h.stderr, '', 'nothing on stderr: no trace');
        assert.equal(fs.readFileSync(f, 'utf8').split('\n').length, 6);
        assert.equal(fleet.xdpAttached(), false, 'XDP detached');
      });
    }
  }

  test('-o into a full filesystem: exit 1, one line, XDP detached, whole records only', async () => {
    const mnt = path.join(dir, 'tiny');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'ho-output-test', mnt]);
    try {
      const f = path.join(mnt, 'out.ndjson');
      const meta = path.join(dir, 'full.json');
      const child = startCli(['sweep', ...MEDIUM, ...COMMON, '--format', 'ndjson', '-o', f, '--metadata-file', meta], fleet);
      const r = await collect(child, 120_000);
      assert.equal(r.code, 1, r.stderr);
      assert.match(oneLine(r.stderr), new RegExp(`cannot write ${f}: ENOSPC`));
      assert.doesNotMatch(r.stderr, /probes in/, 'no summary claiming completion');
      assert.equal(fleet.xdpAttached(), false);
      const text = fs.readFileSync(f, 'utf8');
      assert.ok(text.length > 0 && text.endsWith('\n'), 'partial file ends with a whole record');
      for (const l of text.slice(0, -1).split('\n')) JSON.parse(l);
      const rec = readRunRecord(meta);
      assert.equal(rec.complete, false);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  test('bad destinations are refused before the first packet, one line, exit 2', async () => {
    const rx0 = fleet.fleetLinkStats().rxPackets;
    for (const [flag, extra] of [
      ['-o', []], ['--metadata-file', ['-o', path.join(dir, 'x.out')]], ['--checkpoint', ['-o', path.join(dir, 'x.out')]], ['--status-updates', []],
    ] as const) {
      const r = await collect(startCli(['sweep', ...SMALL, ...COMMON, ...extra, flag, '/nonexistent/dir/file'], fleet), 60_000);
      assert.equal(r.code, 2, `${flag}: ${r.stderr}`);
      assert.match(oneLine(r.stderr), new RegExp(`cannot write ${flag} /nonexistent/dir/file: ENOENT`));
    }
    const ip = await collect(startCli(['sweep', ...SMALL, ...COMMON, '--source-ip', '10.9.9.9'], fleet), 60_000);
    assert.equal(ip.code, 2);
    assert.match(oneLine(ip.stderr), /--source-ip 10\.9\.9\.9 is not an address of this host/);
    // A few packets of neighbour upkeep may cross; a sweep would be thousands.
    assert.ok(fleet.fleetLinkStats().rxPackets - rx0 < 50, 'no SYNs were sent');
  });

  test('--metadata-file and --status-updates: the run record and one progress line a second; stdout only results', async () => {
    const meta = path.join(dir, 'run.json');
    const status = path.join(dir, 'status.ndjson');
    fs.rmSync(status, { force: true });
    const r = await collect(startCli(['sweep', ...MEDIUM, '--rate', '20000', '--timeout', '500', '--no-progress', '--format', 'ndjson',
      '--seed', '7', '--shard', '1/1', '--metadata-file', meta, '--status-updates', status], fleet), 120_000);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assertExact(fleet, rows, 65536, 'stdout');
    const rec = readRunRecord(meta);
    assert.equal(rec.complete, true);
    assert.equal(rec.seed, '7');
    assert.deepEqual(rec.shard, { index: 0, count: 1 });
    assert.equal(rec.probes, 65536);
    assert.deepEqual(rec.output, { path: null, format: 'ndjson', bytes: Buffer.byteLength(r.stdout) });
    assert.equal(Object.values(rec.counts).reduce((a, b) => a + b, 0), 65536);
    assert.equal(rec.counts.filtered, 256);
    assert.ok(rec.sent >= 65536);
    const lines = fs.readFileSync(status, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.length >= 2, `status lines: ${lines.length}`);
    for (const l of lines) assert.deepEqual(Object.keys(l), ['ts', 'sent', 'replies', 'rate', 'eta_s']);
  });

  /**
   * Starts a checkpointed sweep (or resumes it) and stops it with `signal` at
   * a random moment `minMs`–`maxMs` after XDP is attached: well before its end
   * (a 1M sweep at 100,000/s needs 10 s, the rest after a stop at 4 s 6 s).
   */
  async function interrupted(args: string[], signal: NodeJS.Signals, minMs = 1000, maxMs = 4000): Promise<{ code: number | null; stderr: string }> {
    const child: ChildProcess = startCli(args, fleet);
    const done = collect(child, 180_000);
    assert.ok(await waitFor(() => fleet.xdpAttached(), 20_000), 'XDP attached before the signal');
    await sleep(minMs + Math.floor(Math.random() * (maxMs - minMs)));
    child.kill(signal);
    const r = await done;
    assert.ok(await waitFor(() => !fleet.xdpAttached(), 5_000), `XDP detached after the ${signal}`);
    return { code: r.code, stderr: r.stderr };
  }

  for (const signal of ['SIGKILL', 'SIGINT'] as const) {
    test(`1,048,576 probes at 100,000/s, ${signal} twice and resumed: every probe exactly once`, async () => {
      const out = path.join(dir, `big-${signal}.ndjson`);
      const state = path.join(dir, `big-${signal}.state`);
      const meta = path.join(dir, `big-${signal}.json`);
      const first = await interrupted(['sweep', ...LARGE, ...COMMON, '--format', 'ndjson', '-o', out, '--checkpoint', state, '--metadata-file', meta], signal);
      assert.equal(first.code, signal === 'SIGINT' ? 130 : null, first.stderr);
      const saved1 = readCheckpoint(state);
      assert.ok(fs.statSync(out).size >= saved1.bytes);
      const second = await interrupted(['sweep', '--resume', state], signal);
      assert.equal(second.code, signal === 'SIGINT' ? 130 : null, second.stderr);
      const saved2 = readCheckpoint(state);
      assert.ok(saved2.position >= saved1.position, 'the mark only moves forward');
      const last = await collect(startCli(['sweep', '--resume', state], fleet), 180_000);
      assert.equal(last.code, 0, last.stderr);
      const rows = parseOutput('ndjson', out);
      assertExact(fleet, rows, 1 << 20, `after ${signal} ×2`);
      const rec = readRunRecord(meta);
      assert.equal(rec.complete, true);
      assert.equal(rec.output.bytes, fs.statSync(out).size);
      assert.equal(readCheckpoint(state).complete, true);
    });
  }

  test('xml and grepable footers survive SIGKILL and SIGTERM (exit 143) and resume', async () => {
    for (const [format, signal] of [['xml', 'SIGKILL'], ['grepable', 'SIGTERM']] as const) {
      const out = path.join(dir, `mid.${format}`);
      const state = path.join(dir, `mid-${format}.state`);
      // 65,536 probes at 10,000/s take 6.5 s: stopped within 0.5–3 s.
      const first = await interrupted(['sweep', ...MEDIUM, '--rate', '10000', '--timeout', '500', '--no-progress', '--format', format, '-o', out, '--checkpoint', state], signal, 500, 3000);
      assert.equal(first.code, signal === 'SIGTERM' ? 143 : null, first.stderr);
      const r = await collect(startCli(['sweep', '--resume', state], fleet), 120_000);
      assert.equal(r.code, 0, r.stderr);
      assertExact(fleet, parseOutput(format, out), 65536, `${format} resumed`);
    }
  });

  test('--resume refuses a sweep whose targets file changed, one line, exit 2', async () => {
    const list = path.join(dir, 'targets.txt');
    const out = path.join(dir, 'list.ndjson');
    const state = path.join(dir, 'list.state');
    fs.writeFileSync(list, '198.18.7.0/24\n');
    const r = await collect(startCli(['sweep', '-iL', list, '-p', '80', ...COMMON, '--format', 'ndjson', '-o', out, '--checkpoint', state], fleet), 60_000);
    assert.equal(r.code, 0, r.stderr);
    fs.writeFileSync(list, '198.18.8.0/24\n');
    const again = await collect(startCli(['sweep', '--resume', state], fleet), 60_000);
    assert.equal(again.code, 2);
    assert.match(oneLine(again.stderr), /not those of the checkpointed sweep/);
    const extra = await collect(startCli(['sweep', '--resume', state, '--rate', '5'], fleet), 60_000);
    assert.equal(extra.code, 2);
    assert.match(oneLine(extra.stderr), /--resume takes only the checkpoint file/);
  });
});
