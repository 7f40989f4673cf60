// `halfopen serve` against a namespace fleet: rise/fall timing, events and
// hooks, HTTP API and metrics (promtool), agent-check replies, reload, bad
// configs, and a clean shutdown.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import { runCli } from '../helpers/cli';
import { ServeProcess, waitFor, setClosed } from '../helpers/serve';

const skip = netnsSkipReason();
const HTTP = 9180, AGENT = 9181;

function config(dir: string, extra = ''): string {
  return `
defaults: { interval: 400ms, timeout: 200ms, fastinter: 100ms, rise: 2, fall: 3, jitter: 0 }
listen: { http: "127.0.0.1:${HTTP}", agent: "127.0.0.1:${AGENT}" }
events: ${dir}/events.ndjson
hooks: { on_change: 'printf "%s %s %s %s\\n" "$HALFOPEN_BACKEND" "$HALFOPEN_FROM" "$HALFOPEN_TO" "$HALFOPEN_REASON" >> ${dir}/hook.log', timeout: 2s }
backends:
  - { name: web1, host: 198.18.0.1, port: 80, weight: 50 }
  - { name: web2, host: 198.18.0.2, port: 80 }
  - { name: web6, host: "2001:2::6", port: 80 }
  - { name: closed1, host: 198.18.0.3, port: 81 }
${extra}`;
}

const events = (dir: string) => fs.existsSync(`${dir}/events.ndjson`) ? fs.readFileSync(`${dir}/events.ndjson`, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];

describe('halfopen serve', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  let file: string;
  let serve: ServeProcess;

  before(async () => {
    fleet = await Fleet.create({ tag: 'serve', v4: '198.18.0.0/24', v6: '2001:2::/120', open: [80] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-serve-'));
    file = path.join(dir, 'serve.yaml');
    fs.writeFileSync(file, config(dir));
    serve = new ServeProcess(fleet, file);
    await serve.ready();
  });
  after(async () => {
    await serve?.stop();
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('starts without flapping, then reports each backend', async () => {
    assert.ok(await waitFor(() => serve.json(HTTP, '/backends').every((b: any) => b.counters.checks >= 3), 5000));
    const byName = Object.fromEntries(serve.json(HTTP, '/backends').map((b: any) => [b.name, b]));
    assert.equal(byName.web1.state, 'up');
    assert.equal(byName.web6.state, 'up');
    assert.equal(byName.web1.last.state, 'open');
    assert.equal(byName.closed1.state, 'down');
    assert.equal(byName.closed1.last.reason, 'rst');
    assert.deepEqual(events(dir).map((e) => `${e.backend} ${e.from}->${e.to}`), ['closed1 up->down'], 'only the real change, no start-up flap');
    assert.equal(serve.get(HTTP, '/healthz').status, 200);
    assert.equal(serve.json(HTTP, '/backends/web2').address, '198.18.0.2');
    assert.equal(serve.get(HTTP, '/backends/nope').status, 404);
  });

  test('/status: counts, every backend in config order when they fit, else down first', () => {
    const all = serve.json(HTTP, '/status');
    assert.deepEqual([all.total, all.up, all.down], [4, 3, 1]);
    assert.deepEqual(all.backends.map((b: any) => b.name), ['web1', 'web2', 'web6', 'closed1']);
    const one = serve.json(HTTP, '/status?limit=1');
    assert.deepEqual([one.total, one.up, one.down], [4, 3, 1]);
    assert.deepEqual(one.backends.map((b: any) => [b.name, b.state]), [['closed1', 'down']]);
    assert.equal(serve.get(HTTP, '/status?limit=x').status, 400);
  });

  test('down after exactly `fall` failures, up after exactly `rise` successes; event and hook for each', async () => {
    const t0 = Date.now();
    setClosed(fleet, 'serve_web2', '198.18.0.2', 80, true);
    assert.ok(await waitFor(() => events(dir).some((e) => e.backend === 'web2' && e.to === 'down'), 5000), serve.stderr);
    const detectMs = Date.now() - t0;
    const down = events(dir).find((e) => e.backend === 'web2' && e.to === 'down');
    assert.equal(down.consecutive.failures, 3);
    assert.equal(down.reason, 'rst');
    // README, serve, "Detection bound": first failure within one interval, then fall-1 more at
    // fastinter, each within its timeout; 400 ms of margin for the event file and a loaded machine.
    assert.ok(detectMs < 400 + 2 * 100 + 200 + 400, `detected in ${detectMs} ms`);
    const web2 = serve.json(HTTP, '/backends/web2');
    assert.equal(web2.state, 'down');
    assert.ok(web2.counters.closed >= 3);

    setClosed(fleet, 'serve_web2', '198.18.0.2', 80, false);
    assert.ok(await waitFor(() => events(dir).some((e) => e.backend === 'web2' && e.to === 'up'), 5000));
    const up = events(dir).find((e) => e.backend === 'web2' && e.to === 'up');
    assert.equal(up.consecutive.successes, 2);
    assert.ok(up.rtt_ms > 0);
    assert.ok(await waitFor(() => fs.existsSync(`${dir}/hook.log`) && fs.readFileSync(`${dir}/hook.log`, 'utf8').includes('web2 down up syn-ack'), 3000));
    assert.match(fs.readFileSync(`${dir}/hook.log`, 'utf8'), /web2 up down rst\n/);
  });

  test('a backend that falls silent is down within interval + (fall-1) x fastinter + timeout, then comes back', async () => {
    const t0 = Date.now();
    fleet.block('serve_silent', '198.18.0.1', 80, 'drop');
    let detectMs: number;
    try {
      assert.ok(await waitFor(() => events(dir).some((e) => e.backend === 'web1' && e.to === 'down'), 5000), serve.stderr);
      detectMs = Date.now() - t0;
    } finally {
      fleet.unblock('serve_silent');
    }
    const down = events(dir).find((e) => e.backend === 'web1' && e.to === 'down');
    assert.equal(down.reason, 'no-response');
    assert.equal(down.consecutive.failures, 3);
    // The first unanswered check goes out within one interval (400); the next
    // two follow at fastinter (100) while it waits out its timeout (200).
    // A send and a timeout are each seen up to one tick (40 ms) late; 100 ms
    // for reading the event. Checked one after another it would be up to 400 + 3 x 200.
    // This is the README's detection bound (serve, "Detection bound"), and the bound is what tells
    // overlapping checks from sequential ones, so its margin cannot be wider than that difference.
    assert.ok(detectMs <= 400 + 2 * 100 + 200 + 2 * 40 + 100, `detected in ${detectMs} ms`);
    assert.ok(await waitFor(() => serve.json(HTTP, '/backends/web1').state === 'up', 5000));
  });

  test('agent-check replies: up with weight, down with reason, unknown names', () => {
    assert.equal(serve.agent(AGENT, 'web1\n'), 'up ready 50%\n');
    assert.equal(serve.agent(AGENT, 'web6\n'), 'up ready\n');
    assert.equal(serve.agent(AGENT, '198.18.0.3:81\n'), 'down ready #closed rst\n');
    assert.match(serve.agent(AGENT, 'nosuch\n'), /^down #unknown backend/);
  });

  test('/metrics passes promtool check metrics', { skip: spawnSync('sh', ['-c', 'command -v promtool']).status !== 0 && 'promtool not installed (package prometheus)' }, () => {
    const text = serve.get(HTTP, '/metrics').body;
    assert.match(text, /halfopen_backend_up\{backend="web1",address="198\.18\.0\.1",port="80"\} 1/);
    assert.match(text, /halfopen_backend_up\{backend="closed1",address="198\.18\.0\.3",port="81"\} 0/);
    assert.match(text, /halfopen_probe_duration_seconds_count \d+/);
    // generic XDP on veth: the program answers the open backends' SYN+ACKs itself.
    assert.match(text, /halfopen_xdp_packets_total\{kind="synack"\} [1-9]/);
    assert.match(text, /halfopen_xdp_packets_total\{kind="rst_sent"\} [1-9]/);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  test('SIGHUP reload keeps the state of unchanged backends and adds new ones', async () => {
    const before = serve.json(HTTP, '/backends/closed1');
    fs.writeFileSync(file, config(dir, '  - { name: web9, host: 198.18.0.9, port: 80 }\n'));
    serve.signal('SIGHUP');
    assert.ok(await waitFor(() => /reloaded .*5 backends/.test(serve.stderr), 5000), serve.stderr);
    const after = serve.json(HTTP, '/backends/closed1');
    assert.equal(after.state, 'down');
    assert.equal(after.since, before.since);
    assert.ok(after.counters.checks >= before.counters.checks, 'counters continue');
    assert.ok(await waitFor(() => serve.json(HTTP, '/backends/web9').counters.checks >= 1, 3000));
    assert.equal(events(dir).filter((e) => e.backend === 'closed1').length, 1, 'no new event for an unchanged backend');
  });

  test('a bad config on SIGHUP is rejected and the daemon keeps running on the old one', async () => {
    fs.writeFileSync(file, config(dir, '  - { name: broken, host: 198.18.0.10, port: 70000 }\n'));
    serve.signal('SIGHUP');
    assert.ok(await waitFor(() => /reload rejected.*backends\[4\]\.port: expected a whole number from 1 to 65535, got 70000/.test(serve.stderr), 5000), serve.stderr);
    assert.equal(serve.get(HTTP, '/healthz').status, 200);
    assert.equal(serve.json(HTTP, '/backends').length, 5);
  });

  test('SIGHUPs in a burst: each one read or superseded, and the newest file is what runs', async () => {
    const from = serve.stderr.length;
    const web = (n: number) => `  - { name: web${n}, host: 198.18.0.${n}, port: 80 }\n`;
    for (const extra of [web(9) + web(10), web(9) + web(10) + web(11), web(9) + web(11)]) {
      fs.writeFileSync(`${file}.new`, config(dir, extra));
      fs.renameSync(`${file}.new`, file);
      serve.signal('SIGHUP');
      await new Promise((r) => setTimeout(r, 15)); // within the reading of the one before, mostly: then it starts over
    }
    const names = () => serve.json(HTTP, '/backends').map((b: any) => b.name).sort().join(' ');
    assert.ok(await waitFor(() => names() === 'closed1 web1 web11 web2 web6 web9', 5000), `${names()}\n${serve.stderr.slice(from)}`);
    const lines = () => serve.stderr.slice(from).split('\n').filter((l) => /reload/.test(l));
    // The set is installed before the reload's last steps (the exporter) and its line.
    assert.ok(await waitFor(() => /reloaded .*: 6 backends$/.test(lines().pop() ?? ''), 3000), lines().join('\n'));
    assert.ok(lines().every((l) => /reloaded .*: (6|7) backends$|reload of .* superseded by a newer SIGHUP$/.test(l)), lines().join('\n'));
    assert.ok(await waitFor(() => serve.json(HTTP, '/backends/web11').counters.checks >= 1, 3000));
  });

  test('SIGTERM: exits 0, XDP detached, events flushed', async () => {
    const code = await serve.stop();
    assert.equal(code, 0, serve.stderr);
    assert.equal(fleet.xdpAttached(), false);
    assert.ok(events(dir).length >= 3);
  });
});

describe('halfopen serve: a bad config at start', { skip }, () => {
  test('exits 2 naming the file, the field and what was expected', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-serve-bad-'));
    try {
      const file = path.join(dir, 'bad.yaml');
      fs.writeFileSync(file, 'backends:\n  - { host: 198.18.0.1, port: 80, rise: zero }\n');
      const r = await runCli(['serve', '--config', file]);
      assert.equal(r.code, 2);
      assert.equal(r.stderr.trim(), `halfopen: ${file}: backends[0].rise: expected a whole number from 1 to 1000, got "zero"`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

void execFileSync;
