// The sweep layer's space (src/sweep/space.ts): what merge and resume rebuild
// a sweep from, without the command line's definition, and the one port parser.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Command } from 'commander';
import { registerSweep } from '../../src/cli/sweep';
import { buildSpace, specOfCommand, SWEEP_BOOLEAN_FLAGS } from '../../src/sweep/space';
import { isPort, parsePortRange } from '../../src/targets/ports';
import { runCli } from '../helpers/cli';

function sweepCommand(): Command {
  const program = new Command('halfopen');
  registerSweep(program, '0.0.0');
  return program.commands.find((c) => c.name() === 'sweep')!;
}

describe('specOfCommand', () => {
  test('knows every option of sweep that takes no value', () => {
    const booleans = sweepCommand().options.filter((o) => !o.required && !o.optional).map((o) => o.long!);
    assert.deepEqual([...booleans].sort(), [...SWEEP_BOOLEAN_FLAGS].sort());
  });

  test('reads the flags that shape the space, skips the others with their values', () => {
    const spec = specOfCommand(['sweep', '198.18.0.0/24', '--rate', '0', '-p', '80,81', '--open', '--exclude', '198.18.0.9',
      '--exclude=198.18.0.10', '-iL', 'targets.txt', '--exclude-file', 'ex.txt', '--seed', '7', '2001:2::/120', '--format', 'ndjson', '-o', 'x']);
    assert.deepEqual(spec, {
      targets: ['198.18.0.0/24', '2001:2::/120'], ports: '80,81', inputList: 'targets.txt',
      exclude: ['198.18.0.9', '198.18.0.10'], excludeFile: ['ex.txt'],
    });
    assert.deepEqual(specOfCommand(['sweep', '-p80', '--', '-x']), { targets: ['-x'], ports: '80' });
  });

  test('refuses what is not a sweep, and a flag without its value', () => {
    assert.throws(() => specOfCommand(['serve', '-c', 'x']), /not a sweep/);
    assert.throws(() => specOfCommand(['sweep', '198.18.0.1', '-p']), /option -p has no value/);
  });

  test('the recorded command rebuilds the space the sweep had', async () => {
    const a = await buildSpace({ targets: ['198.18.0.0/24'], ports: '80,443', exclude: ['198.18.0.128/25'] });
    const b = await buildSpace(specOfCommand(['sweep', '198.18.0.0/24', '-p', '443,80', '--exclude', '198.18.0.128/25', '--senders', '2']));
    assert.equal(b.fingerprint, a.fingerprint);
    assert.equal(b.space.size, 256);
  });
});

describe('one port parser', () => {
  test('isPort and parsePortRange', () => {
    assert.ok(isPort(1) && isPort(65535));
    assert.ok(!isPort(0) && !isPort(65536) && !isPort(80.5) && !isPort('80'));
    assert.deepEqual(parsePortRange('61000-61999'), { lo: 61000, hi: 61999 });
    assert.deepEqual(parsePortRange(' 7-7 '), { lo: 7, hi: 7 });
    for (const bad of ['0-10', '10-5', '1-65536', '80', 'a-b', '-5', '5-']) assert.equal(parsePortRange(bad), null, bad);
  });

  test('sweep --help shows the --source-ports default as a range', async () => {
    const r = await runCli(['sweep', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout.replace(/\s+/g, ' '), /--source-ports <lo-hi> [^(]*\(kept free of local sockets\) \(default: 61000-61999\)/);
    assert.doesNotMatch(r.stdout, /"lo"/);
  });
});
