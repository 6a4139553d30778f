/**
 * The sidecar process: takes the runtime directory, binds the RPC socket, publishes the
 * connection file, wires the services' methods, and closes everything in order on shutdown.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { EventBus } from "../events.js";
import {
  type ConnectionInfo,
  CONNECTION_FILE_NAME,
  defaultRuntimeDir,
  newKey,
  removeConnectionFile,
  writeConnectionFile,
} from "../rpc/connection-file.js";
import { ensurePrivateDir } from "../util/private-dir.js";
import { FEATURES, PROTOCOL_VERSION, SIGNATURE_SCHEME } from "../rpc/envelope.js";
import { Registry } from "../rpc/registry.js";
import { RpcServer } from "../rpc/server.js";
import { publishedLimits, type RpcLimits, rpcLimitsFromEnv } from "../rpc/limits.js";
import { createLogger, type Logger, type LogLevel } from "../util/logger.js";
import { defaultStateDir } from "../util/paths.js";
import { VERSION } from "../version.js";
import { builtinModule } from "./builtin.js";
import { checkEndpoint, defaultEndpoint } from "./endpoint.js";
import { acquireLock } from "./lock.js";
import type { DaemonContext, ServiceModule } from "../rpc/service.js";
import { serviceModules } from "./services.js";

export interface DaemonOptions {
  runtimeDir?: string;
  stateDir?: string;
  endpoint?: string;
  allowRemote?: boolean;
  /** level of human log lines on stderr (default: warn) */
  stderrLevel?: LogLevel;
  /** level of the JSON log file (default: debug) */
  fileLevel?: LogLevel;
  /** grace for in-flight calls at shutdown */
  shutdownGraceMs?: number;
  /** what a peer can make the RPC socket hold (docs/protocol.md, Limits) @default from the environment */
  rpcLimits?: RpcLimits;
}

export class Daemon {
  private closing: Promise<void> | undefined;
  private readonly closedPromise: Promise<string>;
  private resolveClosed!: (reason: string) => void;

  private constructor(
    readonly info: ConnectionInfo,
    readonly connectionFile: string,
    readonly runtimeDir: string,
    readonly log: Logger,
    readonly events: EventBus,
    readonly registry: Registry,
    private readonly server: RpcServer,
    private readonly modules: ServiceModule[],
    private readonly releaseLock: () => void,
    private readonly opts: DaemonOptions,
  ) {
    this.closedPromise = new Promise((r) => {
      this.resolveClosed = r;
    });
  }

  static async start(opts: DaemonOptions = {}): Promise<Daemon> {
    const runtimeDir = ensurePrivateDir(opts.runtimeDir ?? defaultRuntimeDir());
    const endpoint = opts.endpoint ?? defaultEndpoint(runtimeDir);
    const { remote } = checkEndpoint(endpoint, opts.allowRemote ?? false);
    const limits = opts.rpcLimits ?? rpcLimitsFromEnv();
    const releaseLock = acquireLock(join(runtimeDir, "sidecar.lock"));
    const connectionFile = join(runtimeDir, CONNECTION_FILE_NAME);
    const logFile = join(runtimeDir, "sidecar.log");
    const events = new EventBus();
    // recent log lines (info and above, redacted) become `log` events for the web page and subscribers
    const tap = {
      level: "info" as const,
      write: (record: Record<string, unknown>) => events.emit("log", record),
    };
    const log = createLogger({
      file: logFile,
      fileLevel: opts.fileLevel ?? "debug",
      stderrLevel: opts.stderrLevel ?? "warn",
      base: { pid: process.pid },
      tap,
    });
    if (remote)
      log.warn(
        { endpoint },
        "listening on a non-loopback address (--allow-remote): requests are signed, but events and replies are not encrypted",
      );
    const key = newKey();
    const registry = new Registry();
    const inProcess = new AbortController();
    let localCalls = 0;
    let daemon: Daemon | undefined;
    const ctx: DaemonContext = {
      log,
      events,
      runtimeDir,
      stateDir: opts.stateDir ?? defaultStateDir(),
      connectionFile,
      call: (method, params = {}) =>
        registry.invoke(method, params, {
          client: "in-process",
          requestId: `local-${(localCalls++).toString(36)}`,
          progress: () => undefined,
          signal: inProcess.signal,
          events,
          log,
        }),
      hasMethod: (method) => registry.names().includes(method),
      requestShutdown: (reason) => {
        setImmediate(() => void daemon?.close(reason));
      },
      listening: (session, topic) => server.listening(session, topic),
    };
    const server = new RpcServer(key, registry, events, log, limits);
    let bound = endpoint;
    const modules: ServiceModule[] = [];
    try {
      modules.push(
        builtinModule(ctx, {
          registry,
          server: () => server,
          endpoint: () => bound,
          limits: publishedLimits(limits),
          statuses: () => collectStatus(modules),
        }),
      );
      modules.push(...(await serviceModules(ctx)));
      for (const m of modules) registry.add(...m.methods);
      bound = await server.bind(endpoint);
      const info: ConnectionInfo = {
        endpoint: bound,
        protocol_version: PROTOCOL_VERSION,
        signature_scheme: SIGNATURE_SCHEME,
        key: key.toString("hex"),
        pid: process.pid,
        started_at: new Date().toISOString(),
        version: VERSION,
        log_file: logFile,
        features: [...FEATURES],
        limits: publishedLimits(limits),
      };
      writeConnectionFile(connectionFile, info);
      daemon = new Daemon(
        info,
        connectionFile,
        runtimeDir,
        log,
        events,
        registry,
        server,
        modules,
        releaseLock,
        opts,
      );
      void daemon.closed().then(() => inProcess.abort());
      log.info(
        { endpoint: bound, connectionFile, methods: registry.names().length, limits },
        "sidecar listening",
      );
      return daemon;
    } catch (err) {
      await server.close(0).catch(() => undefined);
      for (const m of modules.reverse()) await m.close?.().catch(() => undefined);
      releaseLock();
      throw err;
    }
  }

  /** A service module by name (e.g. `jobs`), for code that hosts the daemon in-process. */
  getModule(name: string): ServiceModule | undefined {
    return this.modules.find((m) => m.name === name);
  }

  /** Resolves with the reason once the daemon has closed. */
  closed(): Promise<string> {
    return this.closedPromise;
  }

  close(reason = "closed"): Promise<void> {
    this.closing ??= this.doClose(reason);
    return this.closing;
  }

  private async doClose(reason: string): Promise<void> {
    this.log.info({ reason }, "sidecar shutting down");
    await this.server.close(this.opts.shutdownGraceMs ?? 3000);
    for (const m of [...this.modules].reverse()) {
      try {
        await m.close?.();
      } catch (err) {
        this.log.error({ module: m.name, err: (err as Error).message }, "closing a service failed");
      }
    }
    removeConnectionFile(this.connectionFile);
    // (the router removed its socket file on close; this catches one it could not)
    if (this.info.endpoint.startsWith("ipc://"))
      rmSync(this.info.endpoint.slice(6), { force: true });
    this.releaseLock();
    this.log.info({ reason }, "sidecar stopped");
    this.log.flush();
    this.resolveClosed(reason);
  }
}

function collectStatus(modules: ServiceModule[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const m of modules) if (m.status) out[m.name] = m.status();
  return out;
}
