/**
 * SshConnections: the only owner of SSH connections. One connection (an SshLink) per target,
 * shared by every lease (exec, spawn, file copies, tunnels), opened on first acquire and closed
 * with the last release.
 */
import { SidecarError } from "../errors.js";
import type { EventBus } from "../events.js";
import type { Logger } from "../util/logger.js";
import type { AuthOptions } from "./auth.js";
import { loadConfig, resolveChain, SSH_CONFIG_ENV } from "./config.js";
import { firstSessionUnlessUsed } from "./first-session.js";
import type {
  ExecOptions,
  ExecResult,
  HostLease,
  Hosts,
  HostProcess,
  SpawnOptions,
} from "./host.js";
import type { ConnectionInfo, SshLink } from "./link.js";
import type { ReconnectPolicy } from "./link-settings.js";
import { LocalHost } from "./local-host.js";
import { killGroupCommand, remoteExec, remoteSpawn, type RemoteExecDeps } from "./ssh-exec.js";
import { OpenSshLink } from "./openssh/openssh-link.js";
import { Ssh2Link } from "./ssh2/link.js";
import {
  decideTransport,
  defaultPreference,
  type TransportDecision,
  type TransportPreference,
} from "./transport-choice.js";
import { isLocalTarget } from "./target.js";
import { currentCause } from "../rpc/call-cause.js";
import { PromptBroker } from "./prompts/broker.js";
import { AskpassServer } from "./prompts/askpass-server.js";
import { defaultRuntimeDir } from "../rpc/connection-file.js";
import { join } from "node:path";

export interface SshConnectionsOptions {
  events?: EventBus;
  log?: Logger;
  /** ssh config file (default $PARSL_SIDECAR_SSH_CONFIG, else ~/.ssh/config) */
  configPath?: string;
  auth?: AuthOptions;
  /** keepalive interval when the config has no ServerAliveInterval @default 15000 */
  keepaliveMs?: number;
  /** keepalive count when the config has no ServerAliveCountMax @default 3 */
  keepaliveCount?: number;
  /** SSH handshake timeout (ConnectTimeout wins when set) @default 20000 */
  readyTimeoutMs?: number;
  reconnect?: Partial<ReconnectPolicy>;
  /** how long exec/spawn wait for a reconnect before failing @default 30000 */
  waitReadyMs?: number;
  /** session channels per connection @default 10 */
  maxSessions?: number;
  /**
   * Where questions of servers (codes, passwords, passphrases) go @default a broker with no one
   * but SSH_ASKPASS to ask (add attendants to `prompts`)
   */
  prompts?: PromptBroker;
  /** private directory for the askpass helper's socket @default <runtime dir>/askpass-<pid> */
  runtimeDir?: string;
  /**
   * How long a connection the user typed a code (or password) for stays open after its last
   * lease, so that the next step of the same work does not ask again @default 600000
   */
  promptedLingerMs?: number;
  /**
   * The transport of a pool whose acquire names none (docs/ssh.md, "Transports")
   * @default $PARSL_SIDECAR_SSH_TRANSPORT, else "auto"
   */
  transport?: TransportPreference;
  /** the OpenSSH client the openssh transport runs @default "ssh" on PATH */
  sshPath?: string;
}

/** What an acquire may say about the connection it opens (the first acquire of a target decides). */
export interface AcquireOptions {
  /** a pool's own SSH_TRANSPORT */
  transport?: TransportPreference;
}

interface Entry {
  conn: SshLink;
  opening: Promise<void>;
  leases: Map<number, string>;
  /** the user answered a question to open it: it outlives its last lease (promptedLingerMs) */
  prompted: boolean;
  linger: NodeJS.Timeout | undefined;
  /** how its transport was chosen */
  decision: TransportDecision;
  /** the connection generation that last carried a command of a lease */
  sessionGen: number;
}

/** What an SSH lease offers besides HostLease, for src modules (not over RPC). */
export interface SshLease extends HostLease {
  readonly isLocal: false;
  /** the target's connection, whatever carries it (src/ssh/link.ts) */
  readonly connection: SshLink;
  /** how long this pool's commands wait for a reconnect (`waitReadyMs`), for link calls that take a wait */
  readonly waitReadyMs: number;
}

export function isSshLease(lease: HostLease): lease is SshLease {
  return !lease.isLocal && "connection" in lease;
}

export class SshConnections implements Hosts {
  private readonly entries = new Map<string, Entry>();
  private nextLease = 1;
  private closed = false;
  /** asks the user what servers ask (docs/ssh.md, "How prompts reach you") */
  readonly prompts: PromptBroker;
  private askpassServer: Promise<AskpassServer> | undefined;

  constructor(private readonly opts: SshConnectionsOptions = {}) {
    this.prompts = opts.prompts ?? new PromptBroker(opts.log ? { log: opts.log } : {});
  }

  /** Borrow `target` (`local`, `user@host[:port]` or an alias) for `owner`. */
  async acquire(target: string, owner: string, opts: AcquireOptions = {}): Promise<HostLease> {
    if (this.closed) throw new SidecarError("SHUTTING_DOWN", "The SSH connections are closed");
    if (isLocalTarget(target)) return new LocalHost();
    // a pool's SSH_TRANSPORT holds for its later connections too (a tunnel, staging, blocks),
    // which reach it by target alone after the completion's connection closed
    if (opts.transport) this.pinned.set(target, opts.transport);
    const preference = opts.transport ?? this.pinned.get(target) ?? this.opts.transport;
    // decided before the synchronous part below, so two acquires never make two connections
    const decision = this.entries.has(target)
      ? undefined
      : await this.decide(preference ?? defaultPreference());
    const askpass = decision?.kind === "openssh" ? await this.askpass() : undefined;
    if (this.closed) throw new SidecarError("SHUTTING_DOWN", "The SSH connections are closed");
    let entry = this.entries.get(target);
    // a connection that gave up (host key changed) is not reused: the next user starts afresh
    if (entry && (entry.conn.state === "failed" || entry.conn.state === "closed")) {
      this.entries.delete(target);
      entry = undefined;
    }
    if (!entry) {
      const chosen = decision ?? (await this.decide(preference ?? defaultPreference()));
      const conn =
        chosen.kind === "openssh"
          ? this.newOpenSsh(target, askpass!)
          : this.newConnection(target, resolveChain(target, loadConfig(this.opts.configPath)));
      const created: Entry = {
        conn,
        opening: conn.open(),
        leases: new Map(),
        prompted: false,
        linger: undefined,
        decision: chosen,
        sessionGen: 0,
      };
      conn.once("prompted", () => {
        created.prompted = true;
      });
      // after the first connect and every reconnect: sshd's TCP_NODELAY comes with a session
      conn.on("ready", (gen: number) =>
        firstSessionUnlessUsed(
          conn,
          gen,
          (g) => created.sessionGen === g,
          this.opts.waitReadyMs ?? 30_000,
        ),
      );
      // a lingering connection (no lease) that drops is not reconnected: no one to ask for
      conn.on("down", () => {
        if (created.leases.size === 0) this.dropIdle(created);
      });
      entry = created;
      this.entries.set(target, entry);
      created.opening.catch(() => {
        if (this.entries.get(target) === created) this.entries.delete(target);
        conn.close();
      });
    }
    const id = this.nextLease++;
    clearTimeout(entry.linger);
    entry.linger = undefined;
    entry.leases.set(id, owner);
    try {
      await entry.opening;
    } catch (err) {
      entry.leases.delete(id);
      throw err;
    }
    return this.lease(entry, id);
  }

  private readonly decisions = new Map<TransportPreference, Promise<TransportDecision>>();
  /** the transport an acquire named for a target, for its acquires that name none */
  private readonly pinned = new Map<string, TransportPreference>();

  /** The transport for a preference (asked of `ssh -V` once per preference). */
  decide(preference: TransportPreference): Promise<TransportDecision> {
    let d = this.decisions.get(preference);
    if (!d) {
      d = decideTransport(preference, this.opts.sshPath);
      d.catch(() => this.decisions.delete(preference));
      this.decisions.set(preference, d);
    }
    return d;
  }

  /** How the connection to `target` was given its transport, if one is open. */
  decision(target: string): TransportDecision | undefined {
    return this.entries.get(target)?.decision;
  }

  /** An OpenSSH link; what its ssh asks goes through the askpass helper to the broker. */
  private newOpenSsh(target: string, askpass: AskpassServer): SshLink {
    const o = this.opts;
    const cause = currentCause();
    const causeNow = () => (conn.state === "connecting" ? cause : undefined);
    const reg = askpass.register({
      target,
      // ssh -G's user@host:port once the link has read it
      host: () => {
        const i = conn.info();
        return i.user ? `${i.user}@${i.host}:${i.port}` : target;
      },
      cause: causeNow,
      answered: () => conn.emit("prompted"),
    });
    const { SSH_ASKPASS: program, ...env } = reg.env;
    const conn: OpenSshLink = new OpenSshLink(target, {
      runtimeDir: this.runtimeDir(),
      // the same file the ssh2 side reads: the option, else $PARSL_SIDECAR_SSH_CONFIG (-F), else
      // what `ssh TARGET` reads
      ...((o.configPath ?? process.env[SSH_CONFIG_ENV])
        ? { configPath: o.configPath ?? process.env[SSH_CONFIG_ENV] }
        : {}),
      ...(o.sshPath ? { sshPath: o.sshPath } : {}),
      askpass: { program: program!, env, unanswered: () => reg.unanswered() },
      ...(o.keepaliveMs ? { keepaliveMs: o.keepaliveMs } : {}),
      ...(o.keepaliveCount ? { keepaliveCount: o.keepaliveCount } : {}),
      ...(o.readyTimeoutMs ? { connectTimeoutMs: o.readyTimeoutMs } : {}),
      reconnect: { initialMs: o.reconnect?.initialMs ?? 100, maxMs: o.reconnect?.maxMs ?? 10_000 },
      maxSessions: o.maxSessions ?? 10,
      waitReadyMs: o.waitReadyMs ?? 30_000,
      log: (msg, data) => o.log?.info(data ?? {}, msg),
    });
    conn.once("closed", () => reg.release());
    conn.on("state", (state: string, data: Record<string, unknown>) => {
      o.events?.emit("ssh.state", { ...data, state });
      o.log?.info({ ...data, state }, `ssh ${target}: ${state}`);
    });
    return conn;
  }

  /** The private directory of this process's SSH sockets (OpenSSH masters, askpass). */
  private runtimeDir(): string {
    return this.opts.runtimeDir ?? join(defaultRuntimeDir(), `ssh-${process.pid}`);
  }

  private newConnection(target: string, chain: ReturnType<typeof resolveChain>): SshLink {
    const host = chain[chain.length - 1]!;
    const o = this.opts;
    // a question while opening goes to whoever caused the connection; on a reconnect, to no one in particular
    const cause = currentCause();
    const causeNow = () => (conn.state === "connecting" ? cause : undefined);
    const broker = this.prompts;
    const conn: Ssh2Link = new Ssh2Link(target, chain, {
      auth: o.auth ?? {},
      keepaliveMs:
        host.serverAliveInterval > 0 ? host.serverAliveInterval * 1000 : (o.keepaliveMs ?? 15_000),
      keepaliveCount:
        host.serverAliveInterval > 0
          ? host.serverAliveCountMax
          : (o.keepaliveCount ?? host.serverAliveCountMax),
      readyTimeoutMs:
        host.connectTimeout > 0 ? host.connectTimeout * 1000 : (o.readyTimeoutMs ?? 20_000),
      reconnect: { initialMs: o.reconnect?.initialMs ?? 100, maxMs: o.reconnect?.maxMs ?? 10_000 },
      maxSessions: o.maxSessions ?? 10,
      waitReadyMs: o.waitReadyMs ?? 30_000,
      log: (msg, data) => o.log?.info(data ?? {}, msg),
      prompts: {
        ask: async (q, signal) => {
          conn.asking++;
          try {
            const answers = await broker.ask(q, causeNow(), signal);
            conn.emit("prompted");
            return answers;
          } finally {
            conn.asking--;
          }
        },
        canAsk: (q) => broker.canAsk(q, causeNow()),
      },
    });
    conn.on("state", (state: string, data: Record<string, unknown>) => {
      o.events?.emit("ssh.state", { ...data, state });
      o.log?.info({ ...data, state }, `ssh ${target}: ${state}`);
    });
    return conn;
  }

  private lease(entry: Entry, id: number): SshLease {
    const conn = entry.conn;
    const waitMs = this.opts.waitReadyMs ?? 30_000;
    const deps: RemoteExecDeps = {
      target: conn.target,
      open: async (command) => {
        const { channel, release, generation } = await conn.exec(command, waitMs);
        entry.sessionGen = generation;
        return { channel, done: release, onGone: (cb) => conn.onEnded(generation, cb) };
      },
      killGroup: async (pgid, signal) => {
        const { channel: ch, release } = await conn.exec(killGroupCommand(pgid, signal), waitMs);
        try {
          await new Promise<void>((r) => {
            ch.on("close", () => r());
            ch.resume();
            ch.stderr.resume();
            ch.end();
          });
        } finally {
          release();
        }
      },
    };
    let released = false;
    const pool = this;
    return {
      target: conn.target,
      isLocal: false,
      connection: conn,
      waitReadyMs: waitMs,
      exec(command: string, opts?: ExecOptions): Promise<ExecResult> {
        return remoteExec(deps, command, opts);
      },
      spawn(command: string, opts?: SpawnOptions): Promise<HostProcess> {
        return remoteSpawn(deps, command, opts);
      },
      release(): void {
        if (released) return;
        released = true;
        pool.releaseLease(entry, id);
      },
    };
  }

  private releaseLease(entry: Entry, id: number): void {
    entry.leases.delete(id);
    if (entry.leases.size > 0) return;
    const lingerMs = this.opts.promptedLingerMs ?? 600_000;
    if (!entry.prompted || lingerMs <= 0 || this.closed) return this.dropIdle(entry);
    // the user typed a code for it: keep it a while, as an OpenSSH ControlPersist would
    clearTimeout(entry.linger);
    entry.linger = setTimeout(() => this.dropIdle(entry), lingerMs);
    entry.linger.unref();
  }

  private dropIdle(entry: Entry): void {
    if (entry.leases.size > 0) return;
    clearTimeout(entry.linger);
    entry.linger = undefined;
    if (this.entries.get(entry.conn.target) === entry) this.entries.delete(entry.conn.target);
    entry.conn.close();
  }

  /** The live connections, for `ssh.list` and status. */
  list(): Array<ConnectionInfo & { leases: number; owners: string[] }> {
    return [...this.entries.values()].map((e) => ({
      ...e.conn.info(),
      leases: e.leases.size,
      owners: [...new Set(e.leases.values())],
    }));
  }

  /** The connection for a target, if one is open. */
  connection(target: string): SshLink | undefined {
    return this.entries.get(target)?.conn;
  }

  /**
   * The sidecar's askpass helper and its socket, started on first use: an `ssh` the sidecar
   * runs gets `register({target, host, cause}).env`, and its questions reach `prompts`.
   */
  askpass(): Promise<AskpassServer> {
    this.askpassServer ??= AskpassServer.start(
      this.opts.runtimeDir
        ? join(this.opts.runtimeDir, "askpass")
        : join(defaultRuntimeDir(), `askpass-${process.pid}`),
      this.prompts,
      this.opts.log,
    );
    return this.askpassServer;
  }

  /** Close every connection (daemon shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    this.prompts.close();
    for (const e of this.entries.values()) clearTimeout(e.linger);
    const askpass = this.askpassServer;
    this.askpassServer = undefined;
    if (askpass) await askpass.then((a) => a.close()).catch(() => undefined);
    const links = [...this.entries.values()].map((e) => e.conn);
    for (const l of links) l.close();
    this.entries.clear();
    // a connect under way finishes into a closed link, which stops its master then
    await Promise.all(links.map((l) => l.settled?.(10_000)));
  }
}
