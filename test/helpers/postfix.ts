// A private Postfix instance inside a fleet namespace: its own
// config_directory, queue_directory and data_directory under a temp dir, only
// smtpd (+ anvil, + postlogd for maillog_file) in master.cf, no chroot. The
// master runs in the foreground (-d) as our own child, so stop() ends exactly
// the processes we started and a system Postfix is never touched.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../../src/fleet/fleet';

/** Why the Postfix tests cannot run here, or false. */
export function postfixSkipReason(): string | false {
  try {
    execFileSync('postconf', ['-d', 'mail_version'], { stdio: 'ignore' });
  } catch {
    return 'needs postfix (scripts/setup.sh installs it)';
  }
  return false;
}

function idOf(kind: 'passwd' | 'group', name: string): number {
  const line = fs.readFileSync(`/etc/${kind}`, 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no ${kind === 'passwd' ? 'user' : 'group'} "${name}" (is postfix installed?)`);
  return Number(line.split(':')[2]);
}

import { setTimeout as sleep } from 'node:timers/promises';

export class PostfixInstance {
  readonly dir: string;
  readonly logFile: string;
  private master: ChildProcess | null = null;
  private output = '';
  private stopped = false;

  private constructor(readonly fleet: Fleet, readonly address: string, readonly port: number) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ho-postfix-'));
    this.logFile = path.join(this.dir, 'maillog');
  }

  /** Starts smtpd on address:port inside the fleet namespace and waits until it listens. */
  static async start(fleet: Fleet, address: string, port = 25): Promise<PostfixInstance> {
    const p = new PostfixInstance(fleet, address, port);
    try {
      await p.boot();
    } catch (err) {
      await p.stop();
      throw new Error(`postfix did not start: ${(err as Error).message}\n${p.output}${p.log()}`);
    }
    return p;
  }

  private async boot(): Promise<void> {
    const { dir } = this;
    const postfixUid = idOf('passwd', 'postfix'), postdropGid = idOf('group', 'postdrop');
    // The mail_owner must reach queue and data directories through the temp dir.
    fs.chmodSync(dir, 0o755);
    const etc = path.join(dir, 'etc'), queue = path.join(dir, 'queue'), data = path.join(dir, 'data');
    for (const d of [etc, queue, path.join(queue, 'pid'), path.join(queue, 'public'), path.join(queue, 'private'), data])
      fs.mkdirSync(d, { recursive: true, mode: 0o755 });
    fs.chownSync(path.join(queue, 'public'), postfixUid, postdropGid);
    fs.chmodSync(path.join(queue, 'public'), 0o710);
    fs.chownSync(path.join(queue, 'private'), postfixUid, 0);
    fs.chmodSync(path.join(queue, 'private'), 0o700);
    fs.chownSync(data, postfixUid, 0);
    fs.chmodSync(data, 0o700);
    fs.writeFileSync(path.join(etc, 'main.cf'), [
      'compatibility_level = 3.6',
      `config_directory = ${etc}`,
      `queue_directory = ${queue}`,
      `data_directory = ${data}`,
      'myhostname = mx.halfopen.test',
      'mydestination =',
      'mynetworks = 127.0.0.0/8',
      'inet_interfaces = all',
      'inet_protocols = ipv4',
      // No reverse lookups: "connect from unknown[addr]" at once, no resolver traffic.
      'smtpd_peername_lookup = no',
      `maillog_file = ${this.logFile}`,
      `maillog_file_prefixes = ${dir}`,
      'local_recipient_maps =',
      'alias_maps =',
      'alias_database =',
      'smtpd_tls_security_level = none',
      '',
    ].join('\n'));
    fs.writeFileSync(path.join(etc, 'master.cf'), [
      `${this.address}:${this.port} inet n - n - - smtpd`,
      'anvil unix - - n - 1 anvil',
      'postlog unix-dgram n - n - 1 postlogd',
      '',
    ].join('\n'));
    const daemonDir = execFileSync('postconf', ['-dh', 'daemon_directory'], { encoding: 'utf8' }).trim();
    // ip netns exec execs master in place: this child's PID is the master's.
    // Detached = its own session and process group (master -d skips setsid), so
    // its SIGTERM handler's kill(-pid) reaches exactly the daemons it started.
    const child = spawn('ip', ['netns', 'exec', this.fleet.fleet, path.join(daemonDir, 'master'), '-c', etc, '-d'], {
      stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    });
    this.master = child;
    child.stdout!.on('data', (d) => { this.output += d; });
    child.stderr!.on('data', (d) => { this.output += d; });
    const end = Date.now() + 15_000;
    while (Date.now() < end) {
      if (child.exitCode !== null) throw new Error(`master exited with ${child.exitCode}`);
      if (this.listening() && /daemon started/.test(this.log())) return;
      await sleep(50);
    }
    throw new Error('smtpd is not listening after 15 s');
  }

  private listening(): boolean {
    const out = this.fleet.exec('fleet', 'ss', ['-Hltn', `sport = :${this.port}`]);
    return out.includes(`${this.address}:${this.port}`);
  }

  /** The maillog so far. */
  log(): string {
    try { return fs.readFileSync(this.logFile, 'utf8'); } catch { return ''; }
  }

  /** smtpd's "connect from" lines: one per TCP connection the application accepted. */
  connects(): string[] {
    return this.log().split('\n').filter((l) => /postfix\/smtpd\[\d+\]: connect from /.test(l));
  }

  async waitForConnects(n: number, ms = 10_000): Promise<number> {
    const end = Date.now() + ms;
    while (Date.now() < end && this.connects().length < n) await sleep(50);
    return this.connects().length;
  }

  /** Stops the master (it ends its own children), then removes the directory. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const m = this.master;
    if (m?.pid && m.exitCode === null && m.signalCode === null) {
      const exited = new Promise<void>((resolve) => m.once('exit', () => resolve()));
      m.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (m.exitCode === null && m.signalCode === null) { m.kill('SIGKILL'); await exited; }
    }
    // Its process group holds exactly the daemons it started for us. It
    // terminates them itself; anything still there gets a KILL.
    if (m?.pid) {
      for (let i = 0; i < 100 && groupMembers(m.pid).length; i++) await sleep(20);
      for (const pid of groupMembers(m.pid)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** PIDs whose process group is `pgid`. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      // Fields after "(comm)": state ppid pgrp ...
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === pgid) out.push(Number(name));
    } catch { /* exited meanwhile */ }
  }
  return out;
}
