#!/usr/bin/env node
// halfopen command line. Exit codes (sweep, demo): 0 done, 1 runtime failure,
// 2 usage error; `check` has its own (Nagios) codes.
// commander and the sweep are required lazily: `halfopen check` runs every few
// seconds per backend and dispatches (below) before either is loaded.
import type { Command } from 'commander';
import { describe, isUsage } from './exit';

// Read at run time so the compiled tree needs no copy of package.json.
const version: string = require('../../../package.json').version;

export function buildProgram(): Command {
  const { Command } = require('commander') as typeof import('commander');
  const { registerSweep } = require('./sweep') as typeof import('./sweep');
  const program = new Command('halfopen')
    .description('TCP half-open prober and health checker: SYN out, verdict from the reply, RST back, no connection')
    .version(version)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `halfopen: ${s}` : s) });
  registerSweep(program, version);
  // Listed for --help only: main() below runs `check` before commander loads.
  program
    .command('check')
    .description('one half-open check, Nagios plugin semantics: check HOST PORT | check -H HOST -p PORT [-t SECONDS] [-w SECONDS] [-c SECONDS] [-4|-6] [--json]')
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => (require('./check') as typeof import('./check')).run(process.argv.slice(3)));
  program
    .command('serve')
    .description('sidecar daemon: continuous half-open checks with rise/fall, HTTP API, metrics, HAProxy agent-check')
    .requiredOption('-c, --config <file>', 'YAML config (see README)')
    .action(async (o: { config: string }) => {
      const { serve } = await import('../daemon/serve');
      await serve(o.config);
    });
  program
    .command('demo')
    .description('build a throwaway fleet in network namespaces, sweep it, compare with ground truth, remove it')
    .action(async () => {
      const { demo } = await import('./demo');
      process.exitCode = await demo();
    });
  return program;
}

async function main(): Promise<void> {
  const program = buildProgram();
  const { CommanderError } = require('commander') as typeof import('commander');
  try {
    // nmap's two-letter -iL is not a flag shape commander accepts.
    await program.parseAsync(process.argv.map((a) => (a === '-iL' ? '--input-list' : a)));
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with exitCode 0.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    process.stderr.write(`halfopen: ${describe(err)}\n`);
    process.exitCode = isUsage(err) ? 2 : 1;
  }
}

if (require.main === module) {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === 'check') (require('./check') as typeof import('./check')).run(rest);
  else {
    // Once a sweep has written its results and detached XDP, stopping the
    // sender threads one by one only adds wall time: exit (Linux writes to
    // pipes and files synchronously, so nothing written is lost).
    void main().then(() => { if (cmd === 'sweep') process.exit(); });
  }
}
