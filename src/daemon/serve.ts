// `halfopen serve`: the load-balancer sidecar. Keeps the XDP matcher
// attached, checks every backend on its own schedule, and tells load balancers
// (agent-check), monitoring (/metrics) and people (/, events, hooks) about it.
//
// The Daemon holds the running state. A config reaches it in two steps, the
// same at start and at SIGHUP: prepare() takes every step that can fail on the
// operator's input (backends resolved, duplicates, per-backend routes, the
// events file and hook) without touching what runs, and enact() makes the
// prepared config the running one. At start, the listen addresses and
// privileges are checked before XDP is attached or a SYN sent: a failure is
// one line and exit 2 with nothing attached. A reload that fails to prepare is
// rejected and the running config stays; unchanged backends keep their state.
// SIGTERM/SIGINT shut down within SHUTDOWN_MS, XDP detached.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { Engine } from '../engine/engine';
import { HalfopenError } from '../errors';
import { ServeConfig, loadConfigOffThread, previousIndex } from './config';
import { requirePrivileges } from '../privileges';
import { hostPort } from '../targets/address';
import { literal } from '../targets/resolve';
import { Monitor, capacityFor, slotsFor } from './monitor';
import { createHttpServer } from './http';
import { AgentServer } from './agent';
import { PluginSocket } from './plugin-socket';
import { learnRouteSamples } from './plugin-config';
import { EventSink } from './events';
import { AdminGate, loadToken } from './admin';
import { ConfiguredSet, Refresher, ResolvedBackend, byAddress, resolveHost } from './resolver';
import { StateWriter, readState } from './state-file';
import { checkSendRoutes, matcherInterface } from './send-routes';
import { startWatchdog } from './watchdog';
import { PushDriver, initialDiscovery, withDiscovered } from './push/driver';
import { Exporter } from './exporter/exporter';
import { collectGarbageSoon } from './collect';

/** SIGTERM to exit: whatever is still closing then, XDP is detached and the process ends. */
const SHUTDOWN_MS = 1500;

type Resolved = ResolvedBackend[];

/**
 * Backends taken per turn of the event loop when a config is resolved and
 * checked for duplicates: an address literal needs no look-up, but 100,000
 * of them in one go held the loop (and every check due meanwhile) ~200 ms.
 */
const RESOLVE_SLICE = 5000;

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

/** Readings of the config one reload makes at most when newer SIGHUPs keep superseding it (the last is not superseded). */
const MAX_RELOAD_PASSES = 8;

/**
 * Every backend's address; a name that resolves to nothing is a backend
 * without one (down, unresolved). A backend the config reader reused from
 * the running list (previousIndex) with an address literal keeps its entry
 * of `running` as it is; names are looked up again. null when `superseded`
 * says so between two slices.
 */
async function resolveBackends(cfg: ServeConfig, running: ConfiguredSet = ConfiguredSet.EMPTY, superseded: () => boolean = () => false): Promise<Resolved | null> {
  const list: Resolved = new Array(cfg.backends.length);
  const names: Array<Promise<void>> = [];
  const from = previousIndex(cfg.backends);
  for (let i = 0; i < cfg.backends.length; i++) {
    if (i && i % RESOLVE_SLICE === 0) {
      await nextTurn();
      if (superseded()) return null;
    }
    const b = cfg.backends[i];
    const was = from && from[i] >= 0 && from[i] < running.length ? running.at(from[i]) : undefined;
    if (was && was.cfg === b && was.ttlMs === Infinity) {
      list[i] = was;
      continue;
    }
    const addr = literal(b.host);
    if (addr !== null) list[i] = byAddress(b, addr);
    else names.push(resolveHost(b.host, b.resolveInterval).then((r) => { list[i] = { cfg: b, addr: r.addr, unresolved: r.addr === null ? `${b.host}: ${r.error}` : '', ttlMs: r.ttlMs }; }));
  }
  await Promise.all(names);
  // Two address literals for one address:port the config's parser refused already: only names can meet another backend here.
  if (!cfg.allowDuplicates && names.length) {
    const seen = new Map<bigint, string>();
    for (let i = 0; i < list.length; i++) {
      if (i && i % RESOLVE_SLICE === 0) {
        await nextTurn();
        if (superseded()) return null;
      }
      const { cfg: b, addr } = list[i];
      if (addr === null) continue;
      const key = (addr << 16n) | BigInt(b.port);
      const first = seen.get(key);
      if (first !== undefined) throw new HalfopenError('E_CONFIG', `backends ${first} and ${b.name} both check ${hostPort(b.host, b.port)} (set allow_duplicates: true if that is meant)`);
      seen.set(key, b.name);
    }
  }
  return list;
}

function openEngine(cfg: ServeConfig, list: Resolved, exporter: Exporter, onDemandSlots: number, learnSlots = 0): Engine {
  const addrs = list.map((b) => b.addr).filter((a): a is bigint => a !== null);
  addrs.push(...learnRouteSamples(cfg.plugin, addrs)); // plugin.learn may start from no backends
  // /probe's allow list gives a route for a family no backend has (and the interface, for an exporter only).
  if (exporter.enabled) addrs.push(...exporter.routeSamples(addrs.length || cfg.probe.interface ? matcherInterface(list, cfg.probe.interface) || undefined : undefined));
  if (!addrs.length && !cfg.probe.interface) throw new HalfopenError('E_CONFIG', 'no backend has an address to find the interface by: set probe.interface (or an address in exporter.allow)');
  return Engine.open(addrs, capacityFor(list) + onDemandSlots + learnSlots, {
    interface: cfg.probe.interface, sportLo: cfg.probe.sourcePorts.lo, sportHi: cfg.probe.sourcePorts.hi,
    senders: cfg.probe.senders, checksOnly: true, rate: cfg.probe.rate, retries: 0, capacity: 1 << 22,
    // Backends with a source or mark send on raw sockets, RSTs from the kernel: all the same way then.
    sendPath: cfg.backends.some((b) => b.source !== undefined || b.mark) ? 'raw' : 'auto',
    xdpMode: cfg.probe.xdpMode, rst: cfg.probe.rst, hook: cfg.probe.hook,
    warn: (m) => log(`warning: ${m}`),
  });
}

/** The state file's directory must take the file: checked at start, before anything is attached. */
function checkStateDir(file: string): void {
  try {
    fs.accessSync(path.dirname(path.resolve(file)), fs.constants.W_OK);
  } catch (err) {
    throw new HalfopenError('E_CONFIG', `state_file ${file}: cannot write to its directory: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

function listen(server: http.Server | net.Server, where: { host: string; port: number }, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new HalfopenError('E_CONFIG', `cannot listen for ${what} on ${hostPort(where.host, where.port)}: ${(e as NodeJS.ErrnoException).code}`)));
    server.listen(where.port, where.host, () => resolve());
  });
}

const closeServer = (s: http.Server | net.Server) => new Promise<void>((r) => {
  s.close(() => r());
  (s as http.Server).closeAllConnections?.();
});

/** A config that passed every check of its input, ready to become the running one. */
interface Prepared {
  cfg: ServeConfig;
  /** The config's backends and those a balancer lists (push.nftlb discover). */
  list: Resolved;
  /** The config's backends alone. */
  configured: ConfiguredSet;
  /** A new event sink when events or hooks changed (or at start); null keeps the running one. */
  sink: EventSink | null;
}

const log = (m: string) => process.stderr.write(`halfopen serve: ${m}\n`);
const warn = (m: string) => log(`warning: ${m}`);

const newSink = (cfg: ServeConfig) => new EventSink(cfg.events, cfg.hooks.onChange, cfg.hooks.timeout, warn);

export class Daemon {
  private readonly servers: Array<http.Server | net.Server> = [];
  private monitor: Monitor | null = null;
  private engine: Engine | null = null;
  private sink: EventSink | null = null;
  private state: StateWriter | null = null;
  /** Backends the running config and the balancers' lists give. */
  private listed = 0;
  private configured = ConfiguredSet.EMPTY;
  /** The balancers serve drives on every change (src/daemon/push). */
  private push: PushDriver | null = null;
  /** Reloads and rediscoveries, one after the other (exclusive). */
  private installing: Promise<void> = Promise.resolve();
  private rediscoverQueued = false;
  private rediscoverDone: Promise<void> = Promise.resolve();
  /** SIGHUPs received, and how many of them the latest finished reload answered. */
  private hups = 0;
  private hupsDone = 0;
  private reloadQueued = false;
  private reloadDone: Promise<void> = Promise.resolve();
  private refresher: Refresher | null = null;
  private watchdog: { stop(): void } | null = null;
  /** /probe (src/daemon/exporter), and the probe-table slots kept for it from start to exit. */
  private readonly exporter: Exporter;
  private readonly onDemandSlots: number;
  private agent: AgentServer | null = null;
  /** check_tcp_half_open --via (listen.plugin, plugin.*), and the backends it learned. */
  private plugin: PluginSocket | null = null;

  private constructor(private readonly configPath: string, private cfg: ServeConfig) {
    this.exporter = new Exporter(cfg.exporter, log);
    this.onDemandSlots = this.exporter.slotsWanted;
  }

  /** Everything up to the first check; on failure nothing is left attached, bound or open. */
  static async start(configPath: string): Promise<Daemon> {
    // Read as at a reload, on the reader thread: its digest lets the first reload send over only what changed.
    const d = new Daemon(configPath, (await loadConfigOffThread(configPath))!);
    try {
      await d.open();
    } catch (err) {
      await d.push?.close();
      d.monitor?.stop();
      d.exporter.stop();
      d.agent?.close();
      await Promise.all([...d.servers.map(closeServer), d.plugin?.close()]);
      await d.engine?.close();
      await d.sink?.close(0);
      throw err;
    }
    return d;
  }

  private async open(): Promise<void> {
    const cfg = this.cfg;
    const first = this.prepareSink(cfg, null);
    this.sink = first;
    const gate = new AdminGate(cfg.admin.tokenFile ? loadToken(cfg.admin.tokenFile, warn) : null, log);
    if (cfg.stateFile) checkStateDir(cfg.stateFile);
    requirePrivileges();
    Exporter.checkSources(cfg.exporter);
    // Bound before anything is attached; they answer 503 / "down" until the monitor runs.
    if (cfg.listen.http) {
      const extra = () => (this.push?.metrics() ?? '') + this.exporter.metricsText(this.monitor?.onDemandStats ?? null);
      await this.listen(createHttpServer(() => this.monitor, gate, extra, this.exporter), cfg.listen.http, 'HTTP');
    }
    if (cfg.listen.agent) this.agent = new AgentServer(() => this.monitor, cfg.listen.agent); // its own thread (native/addon/agent.cc)
    if (cfg.plugin.socket) await (this.plugin = new PluginSocket(cfg.plugin, () => this.monitor, log)).listen();
    const prepared = (await this.prepare(cfg, null))!;
    if (!prepared.list.length && !this.exporter.enabled && !cfg.plugin.learn) throw new HalfopenError('E_CONFIG', 'no backends to check: none configured, and the push.nftlb farms to discover listed none');
    await this.exporter.refreshAllow();
    this.engine = openEngine(cfg, prepared.list, this.exporter, this.onDemandSlots, this.plugin?.reserve());
    const mon = new Monitor(this.engine, cfg.probe.sourcePorts.lo, cfg.probe.sourcePorts.hi);
    this.monitor = mon;
    mon.reserveOnDemand(this.onDemandSlots);
    this.exporter.attach(mon, this.onDemandSlots);
    this.exporter.start();
    mon.on('change', (ev) => { this.sink?.emit(ev); this.state?.changed(); });
    mon.on('error', (err) => log(`error: ${(err as Error).message}`));
    this.refresher = new Refresher(mon, () => this.cfg.backends, log);
    await this.enact(prepared, false);
    for (const r of prepared.list) if (r.addr === null) warn(`backend ${r.cfg.name}: ${r.unresolved}: down (unresolved) until it resolves`);
    if (cfg.stateFile) this.restoreState(cfg.stateFile, mon);
    this.push = new PushDriver(mon, cfg.push, warn, () => void this.rediscover());
    this.push.start();
    await this.engine.sendSlots(new Uint32Array(0)); // sender thread up before the first check is due
    mon.start();
    this.refresher.start();
    const eng = this.engine;
    log(`checking ${this.listed} backends via ${eng.interface} (${eng.hookLabel}, ${eng.sendPath} sends, RSTs from ${eng.rstFrom === 'xdp' ? 'XDP' : 'the kernel'})` +
      `${cfg.listen.http ? `; http on ${hostPort(cfg.listen.http.host, cfg.listen.http.port)}` : ''}` +
      `${cfg.listen.agent ? `; agent on ${hostPort(cfg.listen.agent.host, cfg.listen.agent.port)}` : ''}` +
      `${this.exporter.enabled && cfg.listen.http ? `; /probe with ${this.onDemandSlots} slots` : ''}` +
      `${cfg.plugin.socket ? `; plugin on ${cfg.plugin.socket}${cfg.plugin.learn ? ' (learning)' : ''}` : ''}`);
    // Under systemd: ready now, and watchdog pings only while /healthz would
    // say ok (checks going out on time): a stuck daemon is killed and restarted.
    this.watchdog = startWatchdog(() => mon.health().ok, { warn });
    collectGarbageSoon(); // what reading and applying the config left behind
    // Replies taken by another program on the XDP hook would read as silent backends: say so once.
    setTimeout(() => { const w = this.engine?.lostRepliesWarning(); if (w) warn(w); }, 10_000).unref();
  }

  private async listen(server: http.Server | net.Server, where: { host: string; port: number }, what: string): Promise<void> {
    await listen(server, where, what);
    this.servers.push(server);
  }

  private restoreState(file: string, mon: Monitor): void {
    const saved = readState(file);
    if (saved && 'problem' in saved) warn(`state file ignored: ${saved.problem}`);
    else if (saved) log(`state of ${mon.restore(saved.backends)} backends restored from ${file}`);
    this.state = new StateWriter(file, () => mon.list(), warn);
    this.state.flush();
  }

  /** The events file and hook of `next`: a new sink when they differ from the running config's (`running` null: at start). */
  private prepareSink(next: ServeConfig, running: ServeConfig | null): EventSink | null {
    if (running && next.events === running.events && next.hooks.onChange === running.hooks.onChange && next.hooks.timeout === running.hooks.timeout) return null;
    return newSink(next);
  }

  /** The steps of a config that can fail on its input, with nothing running touched; null when `superseded` said so. */
  private async prepare(next: ServeConfig, running: ServeConfig | null, superseded?: () => boolean): Promise<Prepared | null> {
    Exporter.checkSources(next.exporter);
    const configured = await resolveBackends(next, running ? this.configured : ConfiguredSet.EMPTY, superseded);
    if (!configured) return null;
    // Per-backend source and mark: at start the interface is the one the backends' routes give.
    checkSendRoutes(configured, this.engine ? this.engine.interface : () => matcherInterface(configured, next.probe.interface));
    // A balancer's backends (push.nftlb discover): read once before the engine opens, then as the driver follows them.
    const found = this.push ? this.push.discovered() : await initialDiscovery(next.push, warn);
    const list = withDiscovered(configured, found, next.template);
    return { cfg: next, list, configured: ConfiguredSet.of(next.backends, configured), sink: running ? this.prepareSink(next, running) : null };
  }

  /**
   * Makes a prepared config the running one. At start the backends are
   * applied at once; on reload in steps (Monitor.prepareApply), checks going
   * on between them.
   */
  private async enact(p: Prepared, stepped: boolean): Promise<void> {
    const mon = this.monitor!;
    this.plugin?.reconfigure(p.cfg.plugin);
    const all = this.plugin ? this.plugin.withLearned(p.list) : p.list; // learned backends stay
    await this.makeRoom(p.cfg, all);
    if (p.sink) {
      const old = this.sink;
      this.sink = p.sink;
      await old?.close();
    }
    // Learned backends are listed again should one be learned while the plan runs.
    if (stepped) await mon.prepareApply(() => this.plugin ? this.plugin.withLearned(p.list) : p.list).run();
    else mon.apply(all);
    this.agent?.refresh();
    this.push?.reconfigure(p.cfg.push);
    // listen, probe, admin and state_file are bound or attached once: they keep the values they started with.
    this.cfg = { ...p.cfg, listen: this.cfg.listen, probe: this.cfg.probe, admin: this.cfg.admin, stateFile: this.cfg.stateFile };
    this.listed = p.list.length;
    this.configured = p.configured;
    this.refresher!.plan(p.list);
    this.state?.changed();
  }

  /** A probe table for `list`: a larger one when it outgrew the running one. */
  private async makeRoom(cfg: ServeConfig, list: Resolved): Promise<void> {
    if (slotsFor(list) + this.onDemandSlots + (this.plugin?.reserve(cfg.plugin) ?? 0) <= this.engine!.capacity) return;
    // One XDP program per interface: the old one must go before the new
    // attaches. The scheduler stops for that: a tick while close() waits
    // for the sender threads would poll a table already closed.
    const mon = this.monitor!;
    const ticking = mon.running;
    mon.stop();
    await this.engine!.close();
    this.engine = openEngine({ ...cfg, probe: this.cfg.probe }, list, this.exporter, this.onDemandSlots, this.plugin?.reserve(cfg.plugin));
    mon.replaceSlots(this.engine);
    if (ticking) mon.start();
  }

  /**
   * Reloads and rediscoveries both install a backend set: one at a time, in
   * the order asked, so neither compares against a set the other is
   * replacing.
   */
  private exclusive(fn: () => Promise<void>): Promise<void> {
    const run = this.installing.then(fn);
    this.installing = run.catch(() => undefined);
    return run;
  }

  /** A balancer's list of backends changed (push.nftlb discover): check the config's and the new list. */
  private rediscover(): Promise<void> {
    if (this.rediscoverQueued) return this.rediscoverDone; // the queued one reads the newest list
    this.rediscoverQueued = true;
    return this.rediscoverDone = this.exclusive(async () => {
      this.rediscoverQueued = false;
      try {
        const list = withDiscovered(this.configured.list(), this.push!.discovered(), this.cfg.template);
        const all = this.plugin ? this.plugin.withLearned(list) : list;
        await this.makeRoom(this.cfg, all);
        await this.monitor!.prepareApply(() => this.plugin ? this.plugin.withLearned(list) : list).run();
        this.agent?.refresh();
        this.listed = list.length;
        this.state?.changed();
      } catch (err) {
        log(`error: discovered backends: ${(err as Error).message}`);
      }
    });
  }

  /**
   * SIGHUP: the config file again, through the same two steps as at start.
   * A SIGHUP while one is read and resolved starts it over with the newer
   * file; one while it is being applied reads the file again after it.
   */
  reload(): Promise<void> {
    this.hups++;
    return this.queueReload();
  }

  private queueReload(): Promise<void> {
    if (this.reloadQueued) return this.reloadDone; // the queued or running one reads the newest file
    this.reloadQueued = true;
    return this.reloadDone = this.exclusive(async () => {
      try {
        for (let pass = 1; ; pass++) {
          const seen = this.hups;
          // The last pass runs to its end whatever comes: a stream of SIGHUPs cannot keep the daemon reading for ever.
          const done = await this.reloadOnce(() => pass < MAX_RELOAD_PASSES && this.hups !== seen);
          if (!done) log(`reload of ${this.configPath} superseded by a newer SIGHUP`);
          else if (this.hups === seen || pass >= MAX_RELOAD_PASSES) break;
        }
      } finally {
        this.reloadQueued = false;
      }
      if (this.hups !== this.hupsDone) void this.queueReload(); // SIGHUPs after the last pass began
    });
  }

  /** One reading of the config file; false when `superseded` said so before anything was changed. */
  private async reloadOnce(superseded: () => boolean): Promise<boolean> {
    const hups = this.hups;
    try {
      const next = await loadConfigOffThread(this.configPath, { previous: this.cfg.backends, abandon: superseded });
      if (!next || superseded()) return false;
      const prepared = await this.prepare(next, this.cfg, superseded);
      if (!prepared || superseded()) return false;
      if (JSON.stringify(next.listen) !== JSON.stringify(this.cfg.listen) || JSON.stringify(next.probe) !== JSON.stringify(this.cfg.probe))
        warn('listen and probe settings take effect at restart only');
      if (JSON.stringify(next.admin) !== JSON.stringify(this.cfg.admin) || next.stateFile !== this.cfg.stateFile)
        warn('admin and state_file settings take effect at restart only');
      await this.enact(prepared, true);
      await this.exporter.reconfigure(next.exporter);
      log(`reloaded ${this.configPath}: ${this.listed} backends`);
      collectGarbageSoon(); // the superseded lists and configs
    } catch (err) {
      log(`reload rejected, keeping the running config: ${(err as Error).message}`);
    }
    this.hupsDone = hups;
    return true;
  }

  /** Stops checking and closes everything; whatever is still closing after SHUTDOWN_MS, XDP goes and the process ends. */
  async stop(sig: string): Promise<void> {
    log(`${sig}: shutting down`);
    this.watchdog?.stop();
    this.monitor?.stop();
    this.exporter.stop();
    this.agent?.close();
    this.refresher?.stop();
    this.state?.flush();
    setTimeout(() => {
      log(`shutdown took over ${SHUTDOWN_MS} ms: exiting`);
      try { this.engine?.detach(); } catch { /* already detached */ }
      process.exit(0);
    }, SHUTDOWN_MS).unref();
    await Promise.all([...this.servers.map(closeServer), this.plugin?.close(), this.sink?.close(SHUTDOWN_MS - 500), this.engine?.close(), this.push?.close()]);
  }
}

/** The command: start, then reload on SIGHUP until SIGTERM or SIGINT. */
export async function serve(configPath: string): Promise<void> {
  // SIGHUP is taken from the first moment: its default would end the
  // process, and one that comes while serve starts (a reload sent as soon as
  // the unit is up, the "checking" line already out) reloads once started,
  // since the file may have changed after start-up read it.
  let daemon: Daemon | null = null;
  let hupWhileStarting = false;
  const onHup = () => { if (daemon) void daemon.reload(); else hupWhileStarting = true; };
  process.on('SIGHUP', onHup);
  try {
    daemon = await Daemon.start(configPath);
  } catch (err) {
    process.off('SIGHUP', onHup);
    throw err;
  }
  const d = daemon;
  if (hupWhileStarting) void d.reload();
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      process.off('SIGHUP', onHup);
      void d.stop(sig).then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
