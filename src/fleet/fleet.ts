// A throwaway fleet in network namespaces, for the demo, the integration
// tests and the benchmarks:
//
//   prober ns  [hoNNNNp] ── veth ── [hoNNNNf]  fleet ns
//   198.19.255.1/30                 198.19.255.2/30, AnyIP: every address of
//   2001:2:0:ffff::1/64             the v4/v6 prefixes is local (route on lo)
//
// With `probers: N` (scale-out: several machines sweeping one fleet), prober
// k >= 1 is [hoNNNNpK] with its own veth into the same fleet namespace,
// 198.19.254.(4k+1)/30 ↔ .(4k+2), 2001:2:0:fe<k>::1/64 ↔ ::2.
//
// Listeners on `open` ports answer SYN+ACK, other ports RST; nftables drops
// `drop` prefixes (filtered) and rejects `reject` prefixes with ICMP
// unreachable. Only the benchmarking ranges 198.18.0.0/15 and 2001:2::/48
// are used, and the prober namespace routes nothing else.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { ProbeState } from '../types';
import { cidrRange, findRange, mergeRanges, AddrRange } from '../targets/ranges';
import { formatAddress, mustParseAddress, isV4 } from '../targets/address';

export interface FleetSpec {
  /** AnyIP prefixes inside the fleet (198.18.0.0/15 and 2001:2::/48 only). */
  v4?: string;
  v6?: string;
  /** Ports with a listener: open, unless dropped or rejected. */
  open: number[];
  /** Prefixes whose TCP is dropped (filtered). */
  drop?: string[];
  /** Prefixes whose TCP is rejected with ICMP unreachable. */
  reject?: string[];
  /** Prefixes whose TCP is answered with RST even on open ports (closed). */
  closed?: string[];
  /** Tag in the namespace names, for humans. */
  tag?: string;
  /** Host names the prober namespace resolves (/etc/netns/<ns>/hosts, bind-mounted by ip netns exec). */
  hosts?: Record<string, string[]>;
  /** Prober namespaces, each with its own addresses and veth into this fleet (default 1, at most 64). */
  probers?: number;
  /**
   * Existing network namespaces (names under /run/netns) to configure as the
   * probers, in order, instead of creating them: a container's, say. The
   * fleet puts its veth and addresses in them and leaves the names alone.
   */
  adoptProbers?: string[];
}

/** Addresses of prober k (0 is the classic single prober) and of the fleet's end of its veth. */
export function proberAddresses(k: number): { proberV4: string; fleetV4: string; proberV6: string; fleetV6: string } {
  if (k === 0) return { proberV4: PROBER_V4, fleetV4: FLEET_V4, proberV6: PROBER_V6, fleetV6: FLEET_V6 };
  if (!(Number.isInteger(k) && k > 0 && k < 64)) throw new RangeError(`prober ${k} outside 0..63`);
  const h = k.toString(16);
  return { proberV4: `198.19.254.${4 * k + 1}`, fleetV4: `198.19.254.${4 * k + 2}`, proberV6: `2001:2:0:fe${h}::1`, fleetV6: `2001:2:0:fe${h}::2` };
}

/** One prober namespace of a fleet. */
export interface Prober { ns: string; ifname: string; fleetIf: string; v4: string; v6: string; adopted: boolean }

export const PROBER_V4 = '198.19.255.1';
export const FLEET_V4 = '198.19.255.2';
export const PROBER_V6 = '2001:2:0:ffff::1';
export const FLEET_V6 = '2001:2:0:ffff::2';

const BENCH_V4 = cidrRange(mustParseAddress('198.18.0.0'), 15, 32);
const BENCH_V6 = cidrRange(mustParseAddress('2001:2::'), 48, 128);

function run(cmd: string, args: string[], input?: string): string {
  try {
    // Large outputs are normal here (a 10,000-backend /metrics is ~6 MB): lift the 1 MB default.
    return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

function parsePrefix(text: string): AddrRange {
  const [a, len] = text.split('/');
  const addr = mustParseAddress(a, 'fleet prefix');
  const v4 = isV4(addr);
  const r = cidrRange(addr, Number(len ?? (v4 ? 32 : 128)), v4 ? 32 : 128);
  const bench = v4 ? BENCH_V4 : BENCH_V6;
  if (r.lo < bench.lo || r.hi > bench.hi) throw new Error(`fleet prefix ${text} is outside the benchmarking ranges`);
  return r;
}

/** Namespaces of fleets whose creating process is gone (killed runs). */
export function removeStaleFleets(): string[] {
  const removed: string[] = [];
  let names: string[] = [];
  try { names = fs.readdirSync('/run/netns'); } catch { return removed; }
  for (const ns of names) {
    const m = /^ho(\d+)x\d+(?:f|p\d*)$/.exec(ns);
    if (!m || fs.existsSync(`/proc/${m[1]}`)) continue;
    try { run('ip', ['netns', 'del', ns]); removed.push(ns); } catch { /* raced with another cleanup */ }
    fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  return removed;
}

let fleetSeq = 0;

/**
 * veth queues per direction, one per core: like a multiqueue NIC, replies
 * spread over receive queues that each core drains on its own. With one
 * queue, every reply waits in a single 256-slot XDP ring that one core
 * drains, and a burst from several cores overflows it (the fleet side's
 * tx_dropped).
 */
const QUEUES = ['numtxqueues', String(Math.max(1, os.availableParallelism())), 'numrxqueues', String(Math.max(1, os.availableParallelism()))];

/** A veth's packet counters (ip -s link). */
export interface LinkStats { txPackets: number; txDropped: number; rxPackets: number }

export class Fleet {
  readonly prober: string;
  readonly fleet: string;
  readonly proberIf: string;
  readonly fleetIf: string;
  readonly spec: FleetSpec;
  /** Every prober; probers[0] is `prober`/`proberIf`. */
  readonly probers: Prober[];
  private listener: ChildProcess | null = null;
  private accepts: string[] = [];
  private readonly drop: AddrRange[];
  private readonly reject: AddrRange[];
  private readonly closed: AddrRange[];
  private readonly openPorts: Set<number>;
  private removed = false;

  private constructor(spec: FleetSpec) {
    const id = `ho${process.pid}x${fleetSeq++}`;
    this.fleet = `${id}f`;
    this.proberIf = `${id}p`.slice(-15);
    this.fleetIf = `${id}f`.slice(-15);
    this.spec = spec;
    const n = spec.probers ?? 1;
    if (!(Number.isInteger(n) && n >= 1 && n <= 64)) throw new Error(`fleet probers ${n}: expected 1 to 64`);
    if (spec.adoptProbers && spec.adoptProbers.length !== n) throw new Error(`fleet adoptProbers names ${spec.adoptProbers.length} namespaces for ${n} probers`);
    this.probers = [];
    for (let k = 0; k < n; k++) {
      const a = proberAddresses(k);
      const suffix = k === 0 ? '' : String(k);
      const adopted = spec.adoptProbers?.[k];
      this.probers.push({
        ns: adopted ?? `${id}p${suffix}`, ifname: `${id}p${suffix}`.slice(-15), fleetIf: `${id}f${suffix}`.slice(-15),
        v4: a.proberV4, v6: a.proberV6, adopted: adopted !== undefined,
      });
    }
    this.prober = this.probers[0].ns;
    this.drop = mergeRanges((spec.drop ?? []).map(parsePrefix));
    this.reject = mergeRanges((spec.reject ?? []).map(parsePrefix));
    this.closed = mergeRanges((spec.closed ?? []).map(parsePrefix));
    this.openPorts = new Set(spec.open);
  }

  /** Builds the namespaces, links, routes, firewall and listeners. */
  static async create(spec: FleetSpec): Promise<Fleet> {
    removeStaleFleets();
    const f = new Fleet(spec);
    try {
      f.build();
      await f.startListener();
    } catch (err) {
      f.remove();
      throw err;
    }
    return f;
  }

  private build(): void {
    const { fleet: F, spec } = this;
    if (spec.v4) parsePrefix(spec.v4);
    if (spec.v6) parsePrefix(spec.v6);
    run('ip', ['netns', 'add', F]);
    const batch = (ns: string, lines: string[]) => run('ip', ['-n', ns, '-batch', '-'], lines.join('\n') + '\n');
    const sys = (ns: string, kv: Record<string, string | number>) => {
      for (const [k, v] of Object.entries(kv)) {
        try { run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `${k}=${v}`]); } catch { /* not per-netns on this kernel */ }
      }
    };
    // No DAD: addresses are usable at once. No ICMP rate limits: every reject answers.
    sys(F, {
      'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0,
      'net.ipv4.icmp_ratelimit': 0, 'net.ipv4.icmp_ratemask': 0, 'net.ipv4.icmp_msgs_per_sec': 100000000,
      'net.ipv4.icmp_msgs_burst': 100000000, 'net.ipv6.icmp.ratelimit': 0,
      'net.core.somaxconn': 65535, 'net.ipv4.tcp_max_syn_backlog': 262144,
    });
    batch(F, [`link set lo up`]);
    const fr: string[] = [];
    if (spec.v4) fr.push(`route add local ${spec.v4} dev lo`);
    if (spec.v6) fr.push(`route add local ${spec.v6} dev lo`);
    this.probers.forEach((p, k) => this.buildProber(p, proberAddresses(k), fr));
    batch(F, fr);
    const rules: string[] = [];
    const set = (rs: AddrRange[], fam: 4 | 6) => rs.filter((r) => isV4(r.lo) === (fam === 4)).map(rangeText).join(', ');
    for (const fam of [4, 6] as const) {
      const ipk = fam === 4 ? 'ip' : 'ip6';
      const d = set(this.drop, fam), r = set(this.reject, fam), c = set(this.closed, fam);
      if (d) rules.push(`${ipk} daddr { ${d} } meta l4proto tcp drop`);
      if (c) rules.push(`${ipk} daddr { ${c} } meta l4proto tcp reject with tcp reset`);
      if (r) rules.push(`${ipk} daddr { ${r} } meta l4proto tcp reject with ${fam === 4 ? 'icmp type host-unreachable' : 'icmpv6 type addr-unreachable'}`);
    }
    if (rules.length) {
      run('ip', ['netns', 'exec', F, 'nft', '-f', '-'],
        `table inet halfopen_fleet {\n chain input {\n  type filter hook input priority 0; policy accept;\n  ${rules.join('\n  ')}\n }\n}\n`);
    }
  }

  /** Prober p's namespace, veth and addresses; appends the fleet side's neighbour entries to `fr`. */
  private buildProber(p: Prober, a: ReturnType<typeof proberAddresses>, fr: string[]): void {
    const { fleet: F, spec } = this;
    const { ns: P, ifname: pi, fleetIf: fi } = p;
    const batch = (ns: string, lines: string[]) => run('ip', ['-n', ns, '-batch', '-'], lines.join('\n') + '\n');
    if (!p.adopted) run('ip', ['netns', 'add', P]);
    run('ip', ['link', 'add', pi, 'netns', P, ...QUEUES, 'type', 'veth', 'peer', 'name', fi, 'netns', F, ...QUEUES]);
    for (const k of ['net.ipv6.conf.all.accept_dad', 'net.ipv6.conf.default.accept_dad']) {
      try { run('ip', ['netns', 'exec', P, 'sysctl', '-qw', `${k}=0`]); } catch { /* not per-netns on this kernel */ }
    }
    batch(P, [`link set lo up`, `link set ${pi} up`, `addr add ${a.proberV4}/30 dev ${pi}`, `addr add ${a.proberV6}/64 dev ${pi} nodad`]);
    batch(F, [`link set ${fi} up`, `addr add ${a.fleetV4}/30 dev ${fi}`, `addr add ${a.fleetV6}/64 dev ${fi} nodad`]);
    const macP = run('ip', ['netns', 'exec', P, 'cat', `/sys/class/net/${pi}/address`]).trim();
    const macF = run('ip', ['netns', 'exec', F, 'cat', `/sys/class/net/${fi}/address`]).trim();
    const pr: string[] = [
      `neigh replace ${a.fleetV4} lladdr ${macF} dev ${pi} nud permanent`,
      `neigh replace ${a.fleetV6} lladdr ${macF} dev ${pi} nud permanent`,
    ];
    fr.push(
      `neigh replace ${a.proberV4} lladdr ${macP} dev ${fi} nud permanent`,
      `neigh replace ${a.proberV6} lladdr ${macP} dev ${fi} nud permanent`,
    );
    if (spec.v4) pr.push(`route add ${spec.v4} via ${a.fleetV4} dev ${pi}`);
    if (spec.v6) pr.push(`route add ${spec.v6} via ${a.fleetV6} dev ${pi}`);
    batch(P, pr);
    if (spec.hosts && !p.adopted) {
      fs.mkdirSync(`/etc/netns/${P}`, { recursive: true });
      const lines = Object.entries(spec.hosts).flatMap(([name, addrs]) => addrs.map((a) => `${a} ${name}`));
      fs.writeFileSync(`/etc/netns/${P}/hosts`, `127.0.0.1 localhost\n${lines.join('\n')}\n`);
    }
  }

  private startListener(): Promise<void> {
    if (!this.spec.open.length) return Promise.resolve();
    const script = path.join(__dirname, 'listener.js');
    const child = spawn('ip', ['netns', 'exec', this.fleet, process.execPath, script, ...this.spec.open.map(String)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.listener = child;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('fleet listener did not start within 10 s')), 10_000);
      readline.createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line === 'ready') { clearTimeout(timer); resolve(); } else if (line.startsWith('accept ')) this.accepts.push(line);
      });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
      child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`fleet listener exited (${code}): ${err.trim()}`)); });
    });
  }

  /**
   * Makes addr:port answer RST ('reset': a stopped listener) or nothing
   * ('drop': a silent backend) until unblock(name). name: an nft table name.
   */
  block(name: string, addr: string, port: number, action: 'reset' | 'drop'): void {
    const fam = addr.includes(':') ? 'ip6' : 'ip';
    const verdict = action === 'reset' ? 'reject with tcp reset' : 'drop';
    run('ip', ['netns', 'exec', this.fleet, 'nft', '-f', '-'],
      `table inet ${name} {\n chain input {\n  type filter hook input priority -10;\n  ${fam} daddr ${addr} tcp dport ${port} ${verdict}\n }\n}\n`);
  }

  unblock(name: string): void {
    run('ip', ['netns', 'exec', this.fleet, 'nft', 'delete', 'table', 'inet', name]);
  }

  /** Connections the fleet's listeners accepted (a half-open probe makes none). */
  acceptedConnections(): string[] { return [...this.accepts]; }

  /** What a correct prober must report for addr:port. */
  truth(addr: bigint, port: number): ProbeState {
    if (findRange(this.drop, addr) >= 0) return 'filtered';
    if (findRange(this.reject, addr) >= 0) return 'unreachable';
    if (findRange(this.closed, addr) >= 0) return 'closed';
    return this.openPorts.has(port) ? 'open' : 'closed';
  }

  /** Runs a command inside a namespace of this fleet (`prober`: the first prober; a number: that prober). */
  exec(ns: 'prober' | 'fleet' | number, cmd: string, args: string[]): string {
    const name = ns === 'fleet' ? this.fleet : ns === 'prober' ? this.prober : this.probers[ns].ns;
    return run('ip', ['netns', 'exec', name, cmd, ...args]);
  }

  /**
   * Runs a one-line XDP program returning `action` for every packet on the
   * fleet-side veth, in native mode if it can (else generic; returns which).
   * XDP_DROP makes a fleet that answers nothing, at the least cost per SYN.
   * XDP_PASS gives the veth NAPI, as a NIC has: replies then leave the
   * sender's system call, and native XDP_TX frames from the prober are
   * delivered (veth drops them when the peer has no NAPI). Goes with the
   * fleet, or with detachFleetXdp().
   */
  attachFleetXdp(action: 'XDP_DROP' | 'XDP_PASS'): 'native' | 'generic' {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-xdp-'));
    try {
      const src = path.join(dir, 'prog.c'), obj = path.join(dir, 'prog.o');
      fs.writeFileSync(src, `#include <linux/bpf.h>\n__attribute__((section("xdp"), used)) int prog(struct xdp_md *ctx) { return ${action}; }\nchar _license[] __attribute__((section("license"), used)) = "GPL";\n`);
      run('clang', ['-O2', '-target', 'bpf', `-I/usr/include/${os.machine()}-linux-gnu`, '-c', src, '-o', obj]);
      let last = '';
      for (const mode of ['xdpdrv', 'xdpgeneric']) {
        try {
          run('ip', ['-n', this.fleet, 'link', 'set', 'dev', this.fleetIf, mode, 'obj', obj, 'sec', 'xdp']);
          return mode === 'xdpdrv' ? 'native' : 'generic';
        } catch (err) {
          last = (err as Error).message;
        }
      }
      throw new Error(`could not attach an ${action} program to ${this.fleetIf}: ${last}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  detachFleetXdp(): void {
    for (const mode of ['xdpdrv', 'xdpgeneric']) {
      try { run('ip', ['-n', this.fleet, 'link', 'set', 'dev', this.fleetIf, mode, 'off']); } catch { /* not attached in this mode */ }
    }
  }

  /** Whether an XDP program is attached to prober k's veth. */
  xdpAttached(k = 0): boolean {
    return /\bxdp/.test(this.exec(k, 'ip', ['-d', 'link', 'show', this.probers[k].ifname]));
  }

  /** argv prefix that runs a command in prober k's namespace. */
  proberArgv(k = 0): string[] { return ['ip', 'netns', 'exec', this.probers[k].ns]; }

  /** TCP sockets in SYN-RECV on the fleet: a half-open probe must leave none. */
  synRecvCount(): number {
    return this.exec('fleet', 'ss', ['-Htn', 'state', 'syn-recv']).split('\n').filter(Boolean).length;
  }

  /** Interface statistics of the fleet-side veth (tx_dropped shows reply loss). */
  fleetLinkStats(): LinkStats { return this.linkStats('fleet', this.fleetIf); }

  /** Interface statistics of the prober-side veth (tx_dropped: SYNs lost with the ring to the fleet full). */
  proberLinkStats(): LinkStats { return this.linkStats('prober', this.proberIf); }

  private linkStats(ns: 'fleet' | 'prober', dev: string): LinkStats {
    const j = JSON.parse(this.exec(ns, 'ip', ['-s', '-j', 'link', 'show', dev]))[0].stats64;
    return { txPackets: j.tx.packets, txDropped: j.tx.dropped, rxPackets: j.rx.packets };
  }

  /** Removes everything; safe to call more than once. */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    if (this.listener && this.listener.exitCode === null) {
      this.listener.stdin?.end();
      this.listener.kill('SIGTERM');
    }
    // Deleting the fleet namespace deletes every veth pair, so adopted probers get their namespaces back bare.
    for (const ns of [...this.probers.filter((p) => !p.adopted).map((p) => p.ns), this.fleet]) {
      try { run('ip', ['netns', 'del', ns]); } catch { /* never created */ }
      fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
  }
}

function rangeText(r: AddrRange): string {
  return r.lo === r.hi ? formatAddress(r.lo) : `${formatAddress(r.lo)}-${formatAddress(r.hi)}`;
}
