// Typed view of the native addon (native/). Loading this module registers
// HalfopenError with the addon for the current thread, so every native
// failure arrives as a HalfopenError carrying code, errno, errname, syscall.
import { HalfopenError } from '../errors';

export interface ProgramOptions {
  capacity: number;
  key: Buffer;
  sportLo: number;
  sportHi: number;
  ringbufBytes?: number;
}

export interface TestRunResult { retval: number; data: Buffer; duration: number }

export interface ProgramFds { prog: number; progTc: number; probes: number; results: number; counters: number; link: number }

/** The program on an interface's XDP hook. */
export interface XdpOwner { id: number; name: string; mode: 'native' | 'generic' | 'offload' }

export interface NativeProgram {
  /**
   * XDP in `mode` (hook 'xdp', the default), tc ingress through a tcx link
   * (hook 'tc'), or XDP when its hook is free and tc when another program
   * holds it (hook 'auto'). Returns what it attached.
   */
  attach(ifindex: number, mode?: 'auto' | 'native' | 'generic', hook?: 'auto' | 'xdp' | 'tc'): 'native' | 'generic' | 'tc';
  /** The program on the interface's XDP hook, or null when it is free. */
  xdpOwner(ifindex: number): XdpOwner | null;
  detach(): void;
  /** Who answers valid SYN+ACKs with the RST: an HO_RST_* value (enum ho_rst_mode). */
  setRstMode(mode: number): void;
  mapBuffer(name: 'probes' | 'results'): ArrayBuffer;
  counters(): number[];
  poll(): Uint32Array;
  /** BPF_PROG_TEST_RUN of one entry point (default 'xdp'); retval is signed (TCX_NEXT = -1). */
  testRun(packet: Buffer, repeat?: number, entry?: 'xdp' | 'tc'): TestRunResult;
  fds(): ProgramFds;
  close(): void;
}

export interface SenderOptions {
  kind: 'raw' | 'packet';
  probesFd: number;
  resultsFd: number;
  capacity: number;
  key: Buffer;
  src4?: Buffer;
  src6?: Buffer;
  ifindex?: number;
  srcMac?: Buffer;
  dstMac4?: Buffer;
  dstMac6?: Buffer;
  mark?: number;
  batch?: number;
  control: BigInt64Array;
  /**
   * Send groups 1.. (group 0 is the fields above): each its own source
   * address and/or SO_MARK, always sent on raw sockets bound to that source.
   */
  groups?: SendGroup[];
  /** Slot → group index, shared with the main thread (SharedArrayBuffer); 0 where unset. */
  groupOf?: Uint16Array;
}

export interface SendGroup { src4?: Buffer; src6?: Buffer; mark?: number }

export interface SendResult {
  sent: number; skipped: number; failed: number; errno: number; errname?: string; aborted: boolean;
  /** sendList with waits: per ms of wait, how late the sender started on those SYNs (ms). */
  late?: Float64Array;
}

export interface NativeSender {
  send(lo: number, hi: number, onlyUnanswered: boolean): SendResult;
  close(): void;
}

/**
 * Health checks' sender: `threads` native threads, each with its own
 * sockets, sending the lists handed over in order (no worker isolate).
 */
export interface NativeSendThreads {
  /**
   * Sends a SYN for each slot, on a sender thread; the list is copied at the
   * call. With waits: slot k's SYN leaves waits[k] ms after the list was made
   * (elapsedMs ago), in order of departure, and the result has `late`.
   */
  sendList(slots: Uint32Array, waits?: Uint16Array, elapsedMs?: number): Promise<SendResult>;
  /** Resolves once every list already handed over is sent and the threads have stopped. */
  close(): Promise<void>;
}

interface Addon {
  setErrorClass(cls: typeof HalfopenError): void;
  Program: new (opts: ProgramOptions) => NativeProgram;
  Sender: new (opts: SenderOptions) => NativeSender;
  SendThreads: new (opts: SenderOptions, threads: number) => NativeSendThreads;
  cookie(key: Buffer, addr: Buffer, dport: number, sport: number): number;
  siphash24(key: Buffer, msg: Buffer): bigint;
  /** The interface's driver as ethtool names it ("veth", "mlx5_core", …); "" if unknown. */
  driverName(ifindex: number): string;
  /** sd_notify: one datagram with `state` to the unix socket at `socketPath` ('@' = abstract); 0 or the errno. */
  notify(socketPath: string, state: string): number;
  /** The agent-check responder's thread, listening on address:port (native/addon/agent.cc). */
  AgentResponder: new (address: string, port: number) => NativeAgentResponder;
}

export interface NativeAgentResponder {
  /** Sets these keys' replies; `whole`: they are the whole table. */
  update(keys: string[], replies: string[], whole: boolean): void;
  remove(keys: string[]): void;
  /** The table is complete: stop answering "halfopen starting". */
  ready(): void;
  stats(): { accepted: number; answered: number; timedOut: number };
  close(): void;
}

function load(): Addon {
  let addon: Addon;
  try {
    // One static path, so tools see the edge: dist/src/addon/addon.js sits three levels below the root.
    addon = require('../../../native/addon/build/Release/halfopen.node') as Addon;
  } catch (err) {
    throw new HalfopenError('E_INTERNAL', `cannot load the native addon native/addon/build/Release/halfopen.node (run npm run build): ${(err as Error).message}`);
  }
  addon.setErrorClass(HalfopenError);
  return addon;
}

let loaded: Addon | undefined;
const addon = (): Addon => (loaded ??= load());

/**
 * The addon, loaded on first use: modules that import it but never call it
 * (merge, the config, the unit tier) run without the native build.
 */
export const native: Omit<Addon, 'setErrorClass'> = {
  get Program() { return addon().Program; },
  get Sender() { return addon().Sender; },
  get SendThreads() { return addon().SendThreads; },
  cookie: (key, addr, dport, sport) => addon().cookie(key, addr, dport, sport),
  siphash24: (key, msg) => addon().siphash24(key, msg),
  driverName: (ifindex) => addon().driverName(ifindex),
  notify: (socketPath, state) => addon().notify(socketPath, state),
  get AgentResponder() { return addon().AgentResponder; },
};
