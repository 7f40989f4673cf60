// farmguardian's check loop, for the tests and the bench: ZEVENET/SKUDONET's
// farmguardian checks a farm's backends one after another, each command run
// through Perl backticks (so /bin/sh, which takes `MARK=… LD_PRELOAD=…`
// prefixes) under an alarm, with the words HOST and PORT substituted, and
// exit 0 taken as up. Runs inside a fleet's prober namespace.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from './fleet';

/** One check as the loop saw it: exit status (-1: the alarm fired), whole-process time, first stdout line. */
export interface LoopCheck { round: number; i: number; code: number; ms: number; line: string }

export interface LoopResult { checks: LoopCheck[]; roundS: number[]; stderr: string }

// The loop of usr/local/zevenet/bin/farmguardian, reduced to what costs time
// and what it reads: per backend, substitute, run under alarm, keep $?.
const PERL = String.raw`use strict; use warnings; use Time::HiRes qw(time);
$| = 1;
my ($template, $alarm, $list, $rounds) = @ARGV;
open(my $fh, '<', $list) or die "$list: $!";
my @backends = map { chomp; [split / /] } <$fh>;
close $fh;
for my $round (1 .. $rounds) {
  my $t0 = time;
  my $i = 0;
  for my $b (@backends) {
    my ($host, $port) = @$b;
    my $command = $template;
    $command =~ s/HOST/$host/g;
    $command =~ s/PORT/$port/g;
    my $code = -1;
    my @output;
    my $t = time;
    eval {
      local $SIG{ALRM} = sub { die "timeout\n" };
      alarm $alarm;
      @output = ` + '`$command`' + String.raw`;
      $code = $? >> 8;
      alarm 0;
    };
    alarm 0;
    my $line = @output ? $output[0] : "\n";
    $line =~ s/\t/ /g;
    printf "check %d %d %d %.3f\t%s", $round, $i, $code, (time - $t) * 1000, $line;
    $i++;
  }
  printf "round %d %.6f\n", $round, time - $t0;
}
`;

/**
 * Runs `rounds` rounds of `template` (HOST and PORT substituted) over
 * `backends`; `onCheck` sees each check as it completes (to change the world
 * mid-run). Rejects when the loop fails or takes longer than `limitMs`.
 */
export async function farmguardianLoop(fleet: Fleet, o: {
  template: string; backends: Array<{ host: string; port: number }>; rounds?: number; alarmS?: number;
  onCheck?: (c: LoopCheck) => void; limitMs?: number;
}): Promise<LoopResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-fg-'));
  const list = path.join(dir, 'backends.txt'), script = path.join(dir, 'farmguardian.pl');
  fs.writeFileSync(list, o.backends.map((b) => `${b.host} ${b.port}`).join('\n') + '\n');
  fs.writeFileSync(script, PERL);
  const child = spawn('ip', ['netns', 'exec', fleet.prober, 'perl', script, o.template, String(o.alarmS ?? 2), list, String(o.rounds ?? 1)],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: LoopResult = { checks: [], roundS: [], stderr: '' };
  let buf = '';
  const killer = setTimeout(() => child.kill('SIGKILL'), o.limitMs ?? 5 * 60_000);
  try {
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d) => { out.stderr += d; });
      child.stdout.on('data', (d) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const c = /^check (\d+) (\d+) (-?\d+) ([\d.]+)\t(.*)$/.exec(line);
          const r = /^round (\d+) ([\d.]+)$/.exec(line);
          if (r) out.roundS.push(Number(r[2]));
          if (!c) continue;
          const check = { round: Number(c[1]), i: Number(c[2]), code: Number(c[3]), ms: Number(c[4]), line: c[5] };
          out.checks.push(check);
          try { o.onCheck?.(check); } catch (err) { child.kill('SIGKILL'); reject(err); }
        }
      });
      child.on('error', reject);
      child.on('exit', (code, sig) => (code === 0 ? resolve() : reject(new Error(`perl loop: exit ${code ?? sig}: ${out.stderr.trim().slice(0, 300)}`))));
    });
  } finally {
    clearTimeout(killer);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
