// `halfopen serve`: the load-balancer sidecar. Keeps the XDP matcher
// attached, checks every backend on its own schedule, and tells load balancers
// (agent-check), monitoring (/metrics) and people (/, events, hooks) about it.
//
// Start-up takes every step that can fail on the operator's input first (the
// config, the hook, the events file, the listen addresses, privileges) and
// only then attaches XDP and sends: a failure is one line and exit 2 with
// nothing attached and no SYN sent. SIGHUP reloads the config (unchanged
// backends keep their state; a bad config is rejected and the old one stays);
// SIGTERM/SIGINT shut down within SHUTDOWN_MS, XDP detached.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { Engine } from '../engine/engine';
import { HalfopenError } from '../errors';
import { BackendConfig, ServeConfig, loadConfig, loadConfigOffThread } from './config';
import { requirePrivileges } from '../privileges';
import { Monitor, capacityFor, slotsFor } from './monitor';
import { createHttpServer } from './http';
import { createAgentServer } from './agent';
import { EventSink } from './events';
import { AdminGate, loadToken } from './admin';
import { Refresher, ResolvedBackend, resolveHost } from './resolver';
import { StateWriter, readState } from './state-file';
import { checkSendRoutes, matcherInterface } from './send-routes';
import { startWatchdog } from './watchdog';
import { Exporter } from './exporter/exporter';

const log = (m: string) => process.stderr.write(`halfopen serve: ${m}\n`);

/** SIGTERM to exit: whatever is still closing then, XDP is detached and the process ends. */
const SHUTDOWN_MS = 1500;

type Resolved = ResolvedBackend[];

/** Every backend's address; a name that resolves to nothing is a backend without one (down, unresolved). */
async function resolveBackends(cfg: ServeConfig): Promise<Resolved> {
  const list = await Promise.all(cfg.backends.map(async (b) => {
    const r = await resolveHost(b.host, b.resolveInterval);
    return { cfg: b, addr: r.addr, unresolved: r.addr === null ? `${b.host}: ${r.error}` : '', ttlMs: r.ttlMs };
  }));
  if (!cfg.allowDuplicates) {
    const seen = new Map<string, string>();
    for (const { cfg: b, addr } of list) {
      if (addr === null) continue;
      const key = `${addr}:${b.port}`;
      const first = seen.get(key);
      if (first !== undefined) throw new HalfopenError('E_CONFIG', `backends ${first} and ${b.name} both check ${b.host}:${b.port} (set allow_duplicates: true if that is meant)`);
      seen.set(key, b.name);
    }
  }
  return list;
}

function openEngine(cfg: ServeConfig, list: Resolved, exporter: Exporter, onDemandSlots: number): Engine {
  const addrs = list.map((b) => b.addr).filter((a): a is bigint => a !== null);
  // /probe's allow list gives a route for a family no backend has (and the interface, for an exporter only).
  if (exporter.enabled) addrs.push(...exporter.routeSamples(addrs.length || cfg.probe.interface ? matcherInterface(list, cfg.probe.interface) || undefined : undefined));
  if (!addrs.length && !cfg.probe.interface) throw new HalfopenError('E_CONFIG', 'no backend has an address to find the interface by: set probe.interface (or an address in exporter.allow)');
  return Engine.open(addrs, capacityFor(list) + onDemandSlots, {
    interface: cfg.probe.interface, sportLo: cfg.probe.sourcePorts.lo, sportHi: cfg.probe.sourcePorts.hi,
    senders: cfg.probe.senders, rate: cfg.probe.rate, retries: 0, capacity: 1 << 22,
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
    server.once('error', (e) => reject(new HalfopenError('E_CONFIG', `cannot listen for ${what} on ${where.host}:${where.port}: ${(e as NodeJS.ErrnoException).code}`)));
    server.listen(where.port, where.host, () => resolve());
  });
}

const closeServer = (s: http.Server | net.Server) => new Promise<void>((r) => {
  s.close(() => r());
  (s as http.Server).closeAllConnections?.();
});

export async function serve(configPath: string): Promise<void> {
  let cfg = loadConfig(configPath);
  let sink = new EventSink(cfg.events, cfg.hooks.onChange, cfg.hooks.timeout, (m) => log(`warning: ${m}`));
  const gate = new AdminGate(cfg.admin.tokenFile ? loadToken(cfg.admin.tokenFile, (m) => log(`warning: ${m}`)) : null, log);
  const exporter = new Exporter(cfg.exporter, log);
  const onDemandSlots = exporter.slotsWanted; // kept in the probe table for /probe from start to exit
  if (cfg.stateFile) checkStateDir(cfg.stateFile);
  const servers: Array<http.Server | net.Server> = [];
  let monitor: Monitor | null = null;
  let engine: Engine | null = null;
  let list: Resolved = [];
  let state: StateWriter | null = null;
  try {
    requirePrivileges();
    Exporter.checkSources(cfg.exporter);
    // Bound before anything is attached; they answer 503 / "down" until the monitor runs.
    if (cfg.listen.http) {
      const s = createHttpServer(() => monitor, gate, exporter);
      await listen(s, cfg.listen.http, 'HTTP');
      servers.push(s);
    }
    if (cfg.listen.agent) {
      const s = createAgentServer(() => monitor);
      await listen(s, cfg.listen.agent, 'the agent');
      servers.push(s);
    }
    list = await resolveBackends(cfg);
    checkSendRoutes(list, () => matcherInterface(list, cfg.probe.interface)); // per-backend source and mark
    await exporter.refreshAllow();
    engine = openEngine(cfg, list, exporter, onDemandSlots);
    monitor = new Monitor(engine, cfg.probe.sourcePorts.lo, cfg.probe.sourcePorts.hi);
    monitor.reserveOnDemand(onDemandSlots);
    exporter.attach(monitor, onDemandSlots);
    exporter.start();
    monitor.on('change', (ev) => { sink.emit(ev); state?.changed(); });
    monitor.on('error', (err) => log(`error: ${(err as Error).message}`));
    monitor.apply(list);
    for (const r of list) if (r.addr === null) log(`warning: backend ${r.cfg.name}: ${r.unresolved}: down (unresolved) until it resolves`);
    if (cfg.stateFile) {
      const saved = readState(cfg.stateFile);
      if (saved && 'problem' in saved) log(`warning: state file ignored: ${saved.problem}`);
      else if (saved) log(`state of ${monitor.restore(saved.backends)} backends restored from ${cfg.stateFile}`);
      const m = monitor;
      state = new StateWriter(cfg.stateFile, () => m.list(), (msg) => log(`warning: ${msg}`));
      state.flush();
    }
    await engine.sendSlots(new Uint32Array(0)); // sender thread up before the first check is due
    monitor.start();
  } catch (err) {
    monitor?.stop();
    exporter.stop();
    await Promise.all(servers.map(closeServer));
    await engine?.close();
    await sink.close(0);
    throw err;
  }
  const mon = monitor;
  let eng = engine;
  const refresher = new Refresher(mon, () => cfg.backends, log);
  refresher.plan(list);
  refresher.start();
  log(`checking ${list.length} backends via ${eng.interface} (${eng.hookLabel}, ${eng.sendPath} sends, RSTs from ${eng.rstFrom === 'xdp' ? 'XDP' : 'the kernel'})` +
    `${cfg.listen.http ? `; http on ${cfg.listen.http.host}:${cfg.listen.http.port}` : ''}` +
    `${cfg.listen.agent ? `; agent on ${cfg.listen.agent.host}:${cfg.listen.agent.port}` : ''}` +
    `${exporter.enabled && cfg.listen.http ? `; /probe with ${onDemandSlots} slots` : ''}`);
  // Under systemd: ready now, and watchdog pings only while /healthz would
  // say ok (checks going out on time): a stuck daemon is killed and restarted.
  const watchdog = startWatchdog(() => mon.health().ok, { warn: (m) => log(`warning: ${m}`) });

  // Replies taken by another program on the XDP hook would read as silent backends: say so once.
  setTimeout(() => { const w = eng.lostRepliesWarning(); if (w) log(`warning: ${w}`); }, 10_000).unref();

  let reloading = false;
  const reload = async () => {
    if (reloading) return;
    reloading = true;
    try {
      const next = await loadConfigOffThread(configPath);
      const nextList = await resolveBackends(next);
      checkSendRoutes(nextList, eng.interface); // per-backend source and mark
      Exporter.checkSources(next.exporter);
      if (JSON.stringify(next.listen) !== JSON.stringify(cfg.listen) || JSON.stringify(next.probe) !== JSON.stringify(cfg.probe))
        log('warning: listen and probe settings take effect at restart only');
      if (JSON.stringify(next.admin) !== JSON.stringify(cfg.admin) || next.stateFile !== cfg.stateFile)
        log('warning: admin and state_file settings take effect at restart only');
      let nextSink: EventSink | null = null;
      if (next.events !== cfg.events || next.hooks.onChange !== cfg.hooks.onChange || next.hooks.timeout !== cfg.hooks.timeout)
        nextSink = new EventSink(next.events, next.hooks.onChange, next.hooks.timeout, (m) => log(`warning: ${m}`));
      if (slotsFor(nextList) + onDemandSlots > eng.capacity) {
        // One XDP program per interface: the old one must go before the new attaches.
        await eng.close();
        eng = openEngine(next, nextList, exporter, onDemandSlots);
        mon.replaceSlots(eng);
      }
      if (nextSink) {
        const old = sink;
        sink = nextSink;
        await old.close();
      }
      mon.apply(nextList);
      await exporter.reconfigure(next.exporter);
      cfg = { ...next, listen: cfg.listen, probe: cfg.probe, admin: cfg.admin, stateFile: cfg.stateFile };
      list = nextList;
      refresher.plan(list);
      state?.changed();
      log(`reloaded ${configPath}: ${list.length} backends`);
    } catch (err) {
      log(`reload rejected, keeping the running config: ${(err as Error).message}`);
    } finally {
      reloading = false;
    }
  };

  await new Promise<void>((resolve) => {
    const stop = async (sig: string) => {
      process.off('SIGHUP', onHup);
      log(`${sig}: shutting down`);
      watchdog.stop();
      mon.stop();
      exporter.stop();
      refresher.stop();
      state?.flush();
      // Whatever is still closing after SHUTDOWN_MS (a hook, a slow client),
      // XDP goes now and the process ends.
      setTimeout(() => {
        log(`shutdown took over ${SHUTDOWN_MS} ms: exiting`);
        try { eng.detach(); } catch { /* already detached */ }
        process.exit(0);
      }, SHUTDOWN_MS).unref();
      await Promise.all([...servers.map(closeServer), sink.close(SHUTDOWN_MS - 500), eng.close()]);
      resolve();
    };
    const onHup = () => { void reload(); };
    process.on('SIGHUP', onHup);
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });
}
