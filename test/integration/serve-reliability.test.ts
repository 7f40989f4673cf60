// `halfopen serve` keeps checking, and says so truthfully, on the
// configurations that once stopped it: thousands of backends with some
// silent and the timeout near the interval, and intervals shorter than a
// scheduling tick. Each runs for a minute on its own fleet while a client in
// the prober namespace asks /healthz and the agent every second; then
// SIGTERM. And every start-up failure is one line and exit 2, before any XDP
// is attached or any SYN sent.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../../src/fleet/fleet';
import { mustParseAddress } from '../../src/targets/address';
import { netnsSkipReason } from '../helpers/privileges';
import { runCli } from '../helpers/cli';
import { ServeProcess, waitFor } from '../helpers/serve';

const skip = netnsSkipReason();
const SOAK_S = Number(process.env.HALFOPEN_SOAK_S ?? 60);

interface Sample { t: number; health: number; healthMs: number; agent: string; agentMs: number }

/**
 * Asks /healthz and the agent once a second, `seconds` times, from inside the
 * prober namespace; one JSON line per round. A request that takes over 1 s is
 * recorded as status 0.
 */
function startWatcher(fleet: Fleet, http: number, agent: number, agentKey: string, seconds: number) {
  const script = `
const net = require('net');
const rounds = ${seconds};
let i = 0;
async function once() {
  const t = Date.now();
  let health = 0;
  try { health = (await fetch('http://127.0.0.1:${http}/healthz', { signal: AbortSignal.timeout(1000) })).status; } catch {}
  const healthMs = Date.now() - t;
  const a0 = Date.now();
  const reply = await new Promise((resolve) => {
    const s = net.connect(${agent}, '127.0.0.1', () => s.write(${JSON.stringify(agentKey + '\n')}));
    let b = '';
    const timer = setTimeout(() => { s.destroy(); resolve(''); }, 1000);
    s.on('data', (d) => { b += d; });
    s.on('close', () => { clearTimeout(timer); resolve(b); });
    s.on('error', () => {});
  });
  process.stdout.write(JSON.stringify({ t, health, healthMs, agent: reply.trim(), agentMs: Date.now() - a0 }) + '\\n');
}
// One round first, not recorded: the first fetch() loads Node's HTTP client (~100 ms).
(async () => { const out = process.stdout.write.bind(process.stdout); process.stdout.write = () => true; await once(); process.stdout.write = out; for (; i < rounds; i++) { const t = Date.now(); await once(); await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - t)))); } })();
`;
  const child = spawn('ip', ['netns', 'exec', fleet.prober, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  const done = new Promise<Sample[]>((resolve) => child.on('exit', () => resolve(out.split('\n').filter(Boolean).map((l) => JSON.parse(l)))));
  return { child, done };
}

interface Hung { title: string; backends: number; drop: string[]; timing: string; agentKey: string }

/** 5,000 backends: 198.18.0.0 + i; the /23 at 198.18.16.0 (512 of them) drops everything. */
const HUNG: Hung[] = [
  { title: '5,000 backends, 512 silent, interval 1s, timeout 900ms', backends: 5000, drop: ['198.18.16.0/23'], timing: 'interval: 1s, timeout: 900ms', agentKey: 'b4100' },
  { title: 'interval 5ms, timeout 5ms, one open and one silent backend', backends: 2, drop: ['198.18.0.1/32'], timing: 'interval: 5ms, timeout: 5ms', agentKey: 'b0' },
  { title: 'interval 50ms, timeout 40ms, one open and one silent backend', backends: 2, drop: ['198.18.0.1/32'], timing: 'interval: 50ms, timeout: 40ms', agentKey: 'b0' },
];

const addr = (i: number) => `198.18.${i >> 8}.${i & 255}`;

/**
 * Runs h for SOAK_S seconds; `finish` then checks the end state and stops it.
 * The minute runs side by side; the finishes one after another, since the
 * test's own synchronous calls into the namespace would stall the others' clocks.
 */
async function soak(h: Hung, idx: number, finishTurn: () => Promise<() => void>): Promise<void> {
  const fleet = await Fleet.create({ tag: `hung${idx}`, v4: '198.18.0.0/16', open: [80], drop: h.drop });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-hung-'));
  let serve: ServeProcess | undefined;
  let watcher: ReturnType<typeof startWatcher> | undefined;
  let release = () => {};
  try {
    const http = 9300 + idx, agent = 9400 + idx;
    const lines = [`defaults: { ${h.timing} }`, `listen: { http: "127.0.0.1:${http}", agent: "127.0.0.1:${agent}" }`, 'backends:'];
    for (let i = 0; i < h.backends; i++) lines.push(`  - { name: b${i}, host: ${addr(i)}, port: 80 }`);
    const file = path.join(dir, 'serve.yaml');
    fs.writeFileSync(file, lines.join('\n') + '\n');
    serve = new ServeProcess(fleet, file);
    await serve.ready(30_000);
    watcher = startWatcher(fleet, http, agent, h.agentKey, SOAK_S);
    const samples = await watcher.done;
    assert.ok(samples.length >= SOAK_S - 1, `${h.title}: ${samples.length} rounds of ${SOAK_S}`);
    // What this test catches is a scheduler that hangs: /healthz then answers late or 503 (README:
    // "503 ... when it has not ticked for 2 s"). 1 s is well inside that and generous for a loaded machine.
    const slowHealth = samples.filter((s) => s.health !== 200 || s.healthMs > 1000);
    assert.deepEqual(slowHealth, [], `${h.title}: /healthz must answer 200 within 1 s every second`);
    const noAgent = samples.filter((s) => !/^(up|down)\b/.test(s.agent));
    assert.deepEqual(noAgent, [], `${h.title}: the agent must answer every second`);
    // The watcher asks once a second; a round past 2.5 s means an answer took longer than the 2 s stall /healthz itself reports.
    for (let i = 1; i < samples.length; i++) assert.ok(samples[i].t - samples[i - 1].t < 2500, `${h.title}: a round took ${samples[i].t - samples[i - 1].t} ms`);
    release = await finishTurn();

    const backends: Array<{ name: string; address: string; state: string; stale: boolean; counters: { checks: number } }> = serve.json(http, '/backends');
    const wrong = backends.filter((b) => (fleet.truth(mustParseAddress(b.address), 80) === 'open') !== (b.state === 'up'));
    assert.deepEqual(wrong.slice(0, 5).map((b) => `${b.name} ${b.address} ${b.state}`), [], `${h.title}: every open backend up, every silent one down`);
    assert.ok(backends.every((b) => !b.stale && b.counters.checks > 0), `${h.title}: every backend checked recently`);

    const t0 = Date.now();
    const code = await serve.stop(5000);
    const ms = Date.now() - t0;
    assert.equal(code, 0, `${h.title}: SIGTERM exit code\n${serve.stderr}`);
    // README, serve, Signals: "exit 0 within 1.5 s"; the margin is for a loaded machine.
    assert.ok(ms < 2500, `${h.title}: SIGTERM took ${ms} ms (the promise is 1.5 s)`);
    assert.equal(fleet.xdpAttached(), false, `${h.title}: XDP detached`);
  } finally {
    if (watcher && watcher.child.exitCode === null) watcher.child.kill('SIGKILL');
    await serve?.stop(1000);
    fleet.remove();
    fs.rmSync(dir, { recursive: true, force: true });
    release();
  }
}

describe('serve keeps checking on configurations that once stopped it', { skip }, () => {
  test(`three configurations, ${SOAK_S} s each, side by side: /healthz and the agent answer every second, states exact, SIGTERM exits 0 within the promised 1.5 s (2.5 s allowed on a loaded machine)`, { timeout: (SOAK_S + 90) * 1000 }, async () => {
    let queue = Promise.resolve();
    const finishTurn = () => new Promise<() => void>((take) => {
      queue = queue.then(() => new Promise<void>((done) => take(done)));
    });
    const results = await Promise.allSettled(HUNG.map((h, i) => soak(h, i, finishTurn)));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length) throw failed[0].reason;
  });
});

/** A counter of SYNs arriving in the fleet (none may arrive when start-up fails). */
function watchSyns(fleet: Fleet): () => number {
  fleet.exec('fleet', 'nft', ['add table inet synwatch']);
  fleet.exec('fleet', 'nft', ['add chain inet synwatch in { type filter hook prerouting priority -300 ; }']);
  fleet.exec('fleet', 'nft', ['add rule inet synwatch in tcp flags & (syn | ack) == syn counter']);
  return () => {
    const j = JSON.parse(fleet.exec('fleet', 'nft', ['-j', 'list', 'table', 'inet', 'synwatch']));
    const rule = j.nftables.find((x: any) => x.rule)?.rule;
    return rule.expr.find((e: any) => e.counter).counter.packets;
  };
}

describe('serve start-up failures: one line, exit 2, nothing attached, no SYN sent', { skip }, () => {
  const cases: Array<{ title: string; yaml: (dir: string) => string; expect: RegExp; occupy?: number }> = [
    {
      title: 'the agent port is taken',
      occupy: 9481,
      yaml: () => 'listen: { http: "127.0.0.1:9480", agent: "127.0.0.1:9481" }\nbackends:\n  - { name: a, host: 198.18.0.1, port: 80 }\n',
      expect: /^halfopen: cannot listen for the agent on 127\.0\.0\.1:9481: EADDRINUSE$/,
    },
    {
      title: 'the HTTP address cannot be bound',
      yaml: () => 'listen: { http: "198.51.100.1:9480" }\nbackends:\n  - { name: a, host: 198.18.0.1, port: 80 }\n',
      expect: /^halfopen: cannot listen for HTTP on 198\.51\.100\.1:9480: EADDRNOTAVAIL$/,
    },
    {
      title: 'the events directory does not exist',
      yaml: (dir) => `events: ${dir}/nonexistent/ev.ndjson\nbackends:\n  - { name: a, host: 198.18.0.1, port: 80 }\n`,
      expect: /^halfopen: cannot open the events file .*\/nonexistent\/ev\.ndjson: ENOENT$/,
    },
    {
      title: 'the hook is not an executable file',
      yaml: (dir) => `hooks: { on_change: "${dir}/missing-hook.sh --flag" }\nbackends:\n  - { name: a, host: 198.18.0.1, port: 80 }\n`,
      expect: /^halfopen: hooks\.on_change: .*\/missing-hook\.sh: ENOENT$/,
    },
    {
      title: 'two backends check the same address and port',
      yaml: () => 'backends:\n  - { name: a, host: 198.18.0.1, port: 80 }\n  - { name: b, host: 198.18.0.1, port: 80 }\n',
      expect: /^halfopen: .*backends\[1\]: expected a host:port not already checked by backend "a" \(or allow_duplicates: true\), got "198\.18\.0\.1:80"$/,
    },
  ];
  for (const c of cases) {
    test(c.title, async () => {
      const fleet = await Fleet.create({ tag: 'startfail', v4: '198.18.0.0/24', open: [80] });
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-startfail-'));
      let holder: ReturnType<typeof spawn> | undefined;
      try {
        const syns = watchSyns(fleet);
        if (c.occupy) {
          holder = spawn('ip', ['netns', 'exec', fleet.prober, process.execPath, '-e', `require('net').createServer().listen(${c.occupy}, '127.0.0.1', () => console.log('ready')); setTimeout(() => {}, 60000)`], { stdio: ['ignore', 'pipe', 'inherit'] });
          let ready = '';
          holder.stdout!.on('data', (d) => { ready += d; });
          assert.ok(await waitFor(() => ready.includes('ready'), 5000));
        }
        const file = path.join(dir, 'serve.yaml');
        fs.writeFileSync(file, c.yaml(dir));
        const r = await runCli(['serve', '--config', file], fleet, 20_000);
        assert.equal(r.code, 2, r.stderr);
        const lines = r.stderr.trim().split('\n');
        assert.equal(lines.length, 1, r.stderr);
        assert.match(lines[0], c.expect);
        assert.equal(fleet.xdpAttached(), false);
        assert.equal(syns(), 0, 'no SYN reached the fleet');
      } finally {
        holder?.kill('SIGKILL');
        fleet.remove();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
  test('allow_duplicates: true accepts two names for one address and port', async () => {
    const fleet = await Fleet.create({ tag: 'dupok', v4: '198.18.0.0/24', open: [80] });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-dupok-'));
    let serve: ServeProcess | undefined;
    try {
      const file = path.join(dir, 'serve.yaml');
      fs.writeFileSync(file, 'allow_duplicates: true\nlisten: { http: "127.0.0.1:9490" }\nbackends:\n  - { name: a, host: 198.18.0.1, port: 80 }\n  - { name: b, host: 198.18.0.1, port: 80 }\n');
      serve = new ServeProcess(fleet, file);
      await serve.ready();
      assert.ok(await waitFor(() => serve!.json(9490, '/backends').every((b: any) => b.counters.checks >= 1), 5000));
    } finally {
      await serve?.stop();
      fleet.remove();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('serve stopped at random moments', { skip }, () => {
  test('SIGTERM or SIGINT at a random moment under 10,000 backends: exit 0 within the promised 1.5 s (2.5 s allowed on a loaded machine), XDP detached, every time', { timeout: 180_000 }, async () => {
    const fleet = await Fleet.create({ tag: 'randstop', v4: '198.18.0.0/16', open: [80], drop: ['198.18.0.0/22'] });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-randstop-'));
    const seed = Number(process.env.HALFOPEN_STOP_SEED ?? Date.now() % 100_000);
    let x = seed;
    const rnd = () => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648; };
    try {
      const lines = ['defaults: { interval: 1s, timeout: 500ms, fastinter: 250ms }', 'listen: { http: "127.0.0.1:9611" }', 'backends:'];
      for (let i = 0; i < 10_000; i++) lines.push(`  - { name: b${i}, host: ${addr(i)}, port: 80 }`);
      const file = path.join(dir, 'serve.yaml');
      fs.writeFileSync(file, lines.join('\n') + '\n');
      for (let k = 0; k < 8; k++) {
        const serve = new ServeProcess(fleet, file);
        await serve.ready(30_000);
        const wait = Math.floor(rnd() * 3000);
        const sig = rnd() < 0.5 ? 'SIGTERM' : 'SIGINT';
        await new Promise((r) => setTimeout(r, wait));
        const t0 = Date.now();
        serve.signal(sig);
        const t = setTimeout(() => serve.child.kill('SIGKILL'), 5000);
        const code = await serve.wait();
        clearTimeout(t);
        const ms = Date.now() - t0;
        const where = `round ${k}: ${sig} ${wait} ms after start (HALFOPEN_STOP_SEED=${seed})`;
        assert.equal(code, 0, `${where}: exit ${code}\n${serve.stderr}`);
        // README, serve, Signals: SIGTERM and SIGINT "exit 0 within 1.5 s"; the margin is for a loaded machine.
        assert.ok(ms < 2500, `${where}: took ${ms} ms (the promise is 1.5 s)`);
        assert.equal(fleet.xdpAttached(), false, `${where}: XDP detached`);
      }
    } finally {
      fleet.remove();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('serve reloads that outgrow the probe table', { skip }, () => {
  test('four SIGHUPs, each needing a larger table while checks go out every 10 ms: serve lives, every backend checked and its state exact', { timeout: 120_000 }, async () => {
    const fleet = await Fleet.create({ tag: 'regrow', v4: '198.18.0.0/20', open: [80], drop: ['198.18.1.0/24'] });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-regrow-'));
    const file = path.join(dir, 'serve.yaml');
    // A 100 ms interval makes 10 ms ticks; a fastinter of 20 ms under an 80 ms
    // timeout gives five slots a backend, so each step is 2-5x the table before.
    const write = (n: number, fast: boolean) => fs.writeFileSync(file, [
      `defaults: { interval: 100ms, timeout: 80ms, fastinter: ${fast ? '20ms' : '100ms'}, rise: 1, fall: 1 }`, 'listen: { http: "127.0.0.1:9541" }', 'backends:',
      ...Array.from({ length: n }, (_, i) => `  - { name: b${i}, host: 198.18.${i >> 8}.${i & 255}, port: 80 }`)].join('\n') + '\n');
    const steps: Array<[number, boolean]> = [[500, true], [1500, false], [1500, true], [4000, true]];
    write(300, false);
    const serve = new ServeProcess(fleet, file);
    try {
      await serve.ready();
      for (const [n, fast] of steps) {
        write(n, fast);
        const reloads = (serve.stderr.match(/reloaded/g) ?? []).length;
        serve.signal('SIGHUP');
        await waitFor(() => (serve.stderr.match(/reloaded|rejected/g) ?? []).length > reloads || serve.child.exitCode !== null || serve.child.signalCode !== null, 20_000);
        assert.deepEqual([serve.child.exitCode, serve.child.signalCode], [null, null], `serve ended at the reload to ${n} backends:\n${serve.stderr}`);
        assert.match(serve.stderr, new RegExp(`reloaded .*: ${n} backends`));
      }
      // 256 of the 4,000 (198.18.1.0/24) are dropped: down; the rest up.
      await waitFor(() => { const st = serve.json(9541, '/status?limit=0'); return st.up === 3744 && st.down === 256; }, 15_000);
      const st = serve.json(9541, '/status?limit=0');
      assert.deepEqual([st.up, st.down], [3744, 256]);
      assert.equal(serve.get(9541, '/healthz').status, 200);
      assert.doesNotMatch(serve.stderr, /error|rejected/);
    } finally {
      await serve.stop();
      fleet.remove();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('SIGHUPs while serve starts (40,000 backends): none ends it, and it reloads once started', { timeout: 120_000 }, async () => {
    const fleet = await Fleet.create({ tag: 'earlyhup', v4: '198.18.0.0/16', open: [80] });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-earlyhup-'));
    const file = path.join(dir, 'serve.yaml');
    fs.writeFileSync(file, ['defaults: { interval: 1s, timeout: 500ms }', 'listen: { http: "127.0.0.1:9542" }', 'backends:',
      ...Array.from({ length: 40_000 }, (_, i) => `  - { name: b${i}, host: 198.18.${i >> 8}.${i & 255}, port: 80 }`)].join('\n') + '\n');
    const serve = new ServeProcess(fleet, file);
    try {
      // Four SIGHUPs from the moment serve catches SIGHUP (before that,
      // Node's own start-up takes the default action, as for any program),
      // all while it still starts, and none after: the reload must come from
      // them. A fixed wait instead took a fast start-up's "checking" line for
      // the first SIGHUP's answer.
      let checkingAt = 0;
      serve.child.stderr!.on('data', () => { if (!checkingAt && /checking \d+ backends/.test(serve.stderr)) checkingAt = performance.now(); });
      const catchesHup = () => {
        try {
          const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(`/proc/${serve.child.pid}/status`, 'utf8'));
          return m !== null && (BigInt(`0x${m[1]}`) & 1n) === 1n; // bit 0: signal 1, SIGHUP
        } catch { return false; }
      };
      await waitFor(() => catchesHup() || serve.child.exitCode !== null, 20_000, 2);
      assert.ok(catchesHup(), `serve never caught SIGHUP:\n${serve.stderr}`);
      let sent = 0, lastAt = 0;
      for (; sent < 4 && serve.child.exitCode === null && serve.child.signalCode === null; sent++) {
        serve.signal('SIGHUP');
        lastAt = performance.now();
        await new Promise((r) => setTimeout(r, 10));
      }
      await waitFor(() => /reloaded/.test(serve.stderr) || serve.child.exitCode !== null || serve.child.signalCode !== null, 30_000);
      assert.deepEqual([serve.child.exitCode, serve.child.signalCode], [null, null], `serve ended after ${sent} SIGHUPs:\n${serve.stderr}`);
      assert.match(serve.stderr, /checking 40000 backends/);
      assert.match(serve.stderr, /reloaded .*: 40000 backends/);
      // Caught from before start-up's work: 40,000 backends take far longer to start than four SIGHUPs 10 ms apart.
      assert.equal(sent, 4);
      assert.ok(checkingAt > lastAt + 10, `serve was up ${(lastAt - checkingAt).toFixed(0)} ms before the last SIGHUP: it caught SIGHUP too late`);
    } finally {
      await serve.stop();
      fleet.remove();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
