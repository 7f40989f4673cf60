// `halfopen serve`: the load-balancer sidecar. Keeps the XDP matcher
// attached, checks every backend on its own schedule, and tells load balancers
// (agent-check), monitoring (/metrics) and people (/, events, hooks) about it.
// SIGHUP reloads the config (unchanged backends keep their state; a bad
// config is rejected and the old one stays); SIGTERM/SIGINT shut down cleanly.
import dns from 'node:dns/promises';
import http from 'node:http';
import net from 'node:net';
import { Engine } from '../engine/engine';
import { HalfopenError } from '../errors';
import { BackendConfig, ServeConfig, loadConfig } from '../health/config';
import { parseAddress } from '../targets/address';
import { requirePrivileges } from '../cli/privileges';
import { Monitor, depthFor } from './monitor';
import { createHttpServer } from './http';
import { createAgentServer } from './agent';
import { EventSink } from './events';
import { startWatchdog } from './watchdog';

const log = (m: string) => process.stderr.write(`halfopen serve: ${m}\n`);

async function resolveBackends(cfg: ServeConfig): Promise<Array<{ cfg: BackendConfig; addr: bigint }>> {
  return Promise.all(cfg.backends.map(async (b) => {
    let addr = parseAddress(b.host.replace(/^\[(.*)\]$/, '$1'));
    if (addr === null) {
      try {
        addr = parseAddress((await dns.lookup(b.host)).address);
      } catch (err) {
        throw new HalfopenError('E_CONFIG', `backend ${b.name}: cannot resolve "${b.host}": ${(err as NodeJS.ErrnoException).code ?? err}`);
      }
    }
    return { cfg: b, addr: addr! };
  }));
}

/** Slots for a backend list (depthFor each), with a quarter more to grow into on reload (beyond that, a reload opens a larger table). */
const slotsFor = (list: Array<{ cfg: BackendConfig }>) => list.reduce((n, b) => n + depthFor(b.cfg), 0);
const capacityFor = (list: Array<{ cfg: BackendConfig }>) => { const n = slotsFor(list); return Math.max(1024, n + (n >> 2)); };

function openEngine(cfg: ServeConfig, list: Array<{ cfg: BackendConfig; addr: bigint }>): Engine {
  return Engine.open(list.map((b) => b.addr), capacityFor(list), {
    interface: cfg.probe.interface, sportLo: cfg.probe.sourcePorts.lo, sportHi: cfg.probe.sourcePorts.hi,
    senders: cfg.probe.senders, rate: cfg.probe.rate, retries: 0, capacity: 1 << 22, sendPath: 'auto',
    xdpMode: cfg.probe.xdpMode, rst: cfg.probe.rst,
    warn: (m) => log(`warning: ${m}`),
  });
}

function listen(server: http.Server | net.Server, where: { host: string; port: number }, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new HalfopenError('E_CONFIG', `cannot listen for ${what} on ${where.host}:${where.port}: ${(e as NodeJS.ErrnoException).code}`)));
    server.listen(where.port, where.host, () => resolve());
  });
}

export async function serve(configPath: string): Promise<void> {
  let cfg = loadConfig(configPath);
  requirePrivileges();
  let list = await resolveBackends(cfg);
  let engine = openEngine(cfg, list);
  const monitor = new Monitor(engine, cfg.probe.sourcePorts.lo, cfg.probe.sourcePorts.hi);
  let sink = new EventSink(cfg.events, cfg.hooks.onChange, cfg.hooks.timeout, (m) => log(`warning: ${m}`));
  monitor.on('change', (ev) => sink.emit(ev));
  monitor.on('error', (err) => log(`error: ${(err as Error).message}`));
  monitor.apply(list);
  await engine.sendSlots(new Uint32Array(0)); // sender thread up before the first check is due
  monitor.start();

  const servers: Array<http.Server | net.Server> = [];
  try {
    if (cfg.listen.http) {
      const s = createHttpServer(() => monitor);
      await listen(s, cfg.listen.http, 'HTTP');
      servers.push(s);
    }
    if (cfg.listen.agent) {
      const s = createAgentServer(() => monitor);
      await listen(s, cfg.listen.agent, 'the agent');
      servers.push(s);
    }
  } catch (err) {
    monitor.stop();
    await engine.close();
    throw err;
  }
  log(`checking ${list.length} backends via ${engine.interface} (${engine.xdpMode} XDP, ${engine.sendPath} sends, RSTs from ${engine.rstFrom === 'xdp' ? 'XDP' : 'the kernel'})` +
    `${cfg.listen.http ? `; http on ${cfg.listen.http.host}:${cfg.listen.http.port}` : ''}` +
    `${cfg.listen.agent ? `; agent on ${cfg.listen.agent.host}:${cfg.listen.agent.port}` : ''}`);
  // Under systemd: ready now, and watchdog pings only while checks go out
  // within 10 s of their schedule (a stuck daemon is killed and restarted).
  const watchdog = startWatchdog(() => monitor.lagMs < 10_000, { warn: (m) => log(`warning: ${m}`) });

  let reloading = false;
  const reload = async () => {
    if (reloading) return;
    reloading = true;
    try {
      const next = loadConfig(configPath);
      const nextList = await resolveBackends(next);
      if (JSON.stringify(next.listen) !== JSON.stringify(cfg.listen) || JSON.stringify(next.probe) !== JSON.stringify(cfg.probe))
        log('warning: listen and probe settings take effect at restart only');
      if (slotsFor(nextList) > engine.capacity) {
        const bigger = openEngineAfterClose(engine, next, nextList);
        engine = await bigger;
        monitor.replaceEngine(engine);
      }
      if (next.events !== cfg.events || next.hooks.onChange !== cfg.hooks.onChange) {
        await sink.close();
        sink = new EventSink(next.events, next.hooks.onChange, next.hooks.timeout, (m) => log(`warning: ${m}`));
      }
      monitor.apply(nextList);
      cfg = { ...next, listen: cfg.listen, probe: cfg.probe };
      list = nextList;
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
      monitor.stop();
      await Promise.all(servers.map((s) => new Promise((r) => { s.close(r); (s as http.Server).closeAllConnections?.(); })));
      await sink.close();
      await engine.close();
      resolve();
    };
    const onHup = () => { void reload(); };
    process.on('SIGHUP', onHup);
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });
}

async function openEngineAfterClose(old: Engine, cfg: ServeConfig, list: Array<{ cfg: BackendConfig; addr: bigint }>): Promise<Engine> {
  // One XDP program per interface: the old one must go before the new attaches.
  await old.close();
  return openEngine(cfg, list);
}
