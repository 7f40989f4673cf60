// `halfopen check`: the native plugin check_tcp_half_open (native/plugin),
// run with the same arguments. The check's arguments, help, status lines,
// JSON and exit codes exist once, in C++, so `halfopen check` and the plugin
// that farmguardian, Nagios and keepalived run cannot differ: this process
// hands over its stdin, stdout and stderr and exits with the plugin's code.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HO_CHECK_UNKNOWN } from '../contract.generated';

/** Where scripts/build.sh (native/plugin/Makefile) puts the plugin; the Debian package links it there too. */
export const PLUGIN = path.join(__dirname, '../../../native/plugin/build/check_tcp_half_open');

export function run(argv: readonly string[]): void {
  const r = spawnSync(PLUGIN, argv, { stdio: 'inherit' });
  if (r.error) {
    // Nagios reads stdout: the UNKNOWN line goes there, as the plugin's own would.
    fs.writeSync(1, `TCP UNKNOWN - cannot run the native plugin ${PLUGIN} (run npm run build): ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}\n`);
    process.exit(HO_CHECK_UNKNOWN);
  }
  // A plugin killed by a signal exits as a shell reports it: 128 + the signal's number.
  process.exit(r.status ?? 128 + (r.signal ? os.constants.signals[r.signal] : 0));
}
