/**
 * SshLink over the user's own OpenSSH: one ControlMaster per target (the user's, when their
 * ssh_config names a ControlPath and a master runs there, else one the sidecar starts in its
 * private runtime directory) and everything through it: sessions (`ssh -S`), remote forwards
 * (`-O forward`/`-O cancel`), connections (`-W`), file copies. Liveness is the master itself: a
 * connection held to its socket closes when it exits (ServerAlive ends it on a dead network);
 * then the link reconnects with a new master, with the same backoff as the ssh2 link.
 */
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import type { Duplex } from "node:stream";
import { SidecarError, toSidecarError } from "../../errors.js";
import { sleep, within } from "../../util/timeout.js";
import { GenerationEnds } from "../generation-ends.js";
import type {
  ConnectionInfo,
  DirectListener,
  RemoteListener,
  SessionChannel,
  SshLink,
  SshState,
} from "../link.js";
import type { ChildChannel } from "./channel.js";
import {
  type Conn,
  mastersUnder,
  openConn,
  releaseConn,
  SocketPaths,
  stopStrayMasters,
} from "./conn.js";
import {
  type ForwardContext,
  type ForwardTo,
  type OpenListener,
  remoteConnect,
  remoteListen,
} from "./forwards.js";
import { clientOptions } from "./master.js";
import type { OpenSshLinkOptions } from "./options.js";
import { putFileThrough } from "./put-file.js";
import { type OpenSshTarget, openSshTarget, type Resolved } from "./resolve.js";
import { OpenSshSession, openFailed, SessionOpenError, sessionCommand } from "./session.js";
import { SessionSlots } from "./slots.js";

export type { OpenSshLinkOptions } from "./options.js";

/** Session clients: no tty, no X11 or agent, no escape character, never a connection of their own. */
const SESSION_OPTIONS = [
  "-T",
  "-x",
  "-a",
  "-e",
  "none",
  "-o",
  "BatchMode=yes",
  "-o",
  "ProxyCommand=false",
];

export class OpenSshLink extends EventEmitter implements SshLink {
  readonly transport = "openssh" as const;
  state: SshState = "connecting";
  generation = 0;
  reconnects = 0;
  lastError: SidecarError | undefined;
  private conn: Conn | undefined;
  /** the last connection's settings, for info() while reconnecting */
  private lastResolved: Resolved | undefined;
  private readonly t: OpenSshTarget;
  private readonly sshPath: string;
  private readonly slots: SessionSlots;
  private readonly generationEnds = new GenerationEnds();
  private readonly children = new Set<ChildChannel>();
  private readonly forwards = new Map<OpenListener, number>();
  /** direct forwards by generation, address, port and destination */
  private readonly direct = new Set<string>();
  private readonly paths: SocketPaths;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly target: string,
    private readonly opts: OpenSshLinkOptions,
  ) {
    super();
    this.setMaxListeners(0);
    this.t = openSshTarget(target, opts.configPath);
    this.sshPath = opts.sshPath ?? "ssh";
    this.paths = new SocketPaths(opts.runtimeDir);
    this.slots = new SessionSlots(
      target,
      opts.maxSessions ?? 10,
      async (ms) => {
        await this.ready(ms);
        return this.generation;
      },
      () => this.generation,
    );
  }

  /** the ControlPath in use, while connected */
  get controlPath(): string | undefined {
    return this.conn?.controlPath;
  }

  /** true while the link uses the user's own ControlMaster */
  get sharedMaster(): boolean {
    return this.conn !== undefined && !this.conn.owned;
  }

  /** the master's pid (from its mux alive check), while connected */
  get masterPid(): number | undefined {
    return this.conn?.watch.pid;
  }

  private get waitMs(): number {
    return this.opts.waitReadyMs ?? 30_000;
  }

  private setState(state: SshState, data: Record<string, unknown> = {}): void {
    this.state = state;
    this.emit("state", state, {
      target: this.target,
      generation: this.generation,
      reconnects: this.reconnects,
      ...data,
    });
  }

  async open(): Promise<void> {
    const c = await this.openConnection();
    if (this.state === "closed") {
      releaseConn(c, this.sshPath, this.t);
      throw new SidecarError(
        "SSH_CONNECT",
        `The connection to \`${this.target}\` was closed while it was opening`,
      );
    }
    this.adopt(c);
  }

  /** connects under way: close() lets each finish and stops its master (see settled) */
  private readonly opening = new Set<Promise<unknown>>();

  /**
   * Resolves once no connect is under way (bounded by `timeoutMs`): a master a connect starts
   * after close() is stopped when the connect returns, which must happen before this process
   * exits, else the master outlives it (the soak saw one 10 s after `run` ended).
   */
  async settled(timeoutMs: number): Promise<void> {
    if (this.opening.size > 0) {
      await within(Promise.allSettled([...this.opening]), timeoutMs, undefined);
      // close() stopped every master there was; these a connect left since
      if (this.state === "closed") stopStrayMasters(this.paths.masterPrefix());
    }
    if (this.state !== "closed") return;
    const prefix = this.paths.masterPrefix();
    // see them gone, so that a caller that exits next (`run`) leaves none behind, not even for
    // the moment SIGTERM takes
    const until = Date.now() + Math.min(timeoutMs, 3_000);
    while (mastersUnder(prefix).length > 0 && Date.now() < until) await sleep(20);
  }

  private openConnection(): Promise<Conn> {
    const p = this.connectOnce();
    this.opening.add(p);
    void p.then(
      () => this.opening.delete(p),
      () => this.opening.delete(p),
    );
    return p;
  }

  private connectOnce(): Promise<Conn> {
    return openConn(this.target, this.t, this.sshPath, this.opts, this.paths, (r) => {
      this.lastResolved = r;
    });
  }

  private adopt(c: Conn): void {
    this.conn = c;
    this.lastResolved = c.resolved;
    this.generation++;
    this.attempt = 0;
    const gen = this.generation;
    c.watch.once("closed", () => void this.onDown(gen));
    this.setState("ready", { shared_master: !c.owned });
    this.emit("ready", gen);
  }

  ended(gen: number): Promise<void> {
    return this.generationEnds.wait(gen, gen === this.generation && this.state === "ready");
  }

  get endWaiters(): number {
    return this.generationEnds.size;
  }

  onEnded(gen: number, cb: () => void): () => void {
    return this.generationEnds.on(gen, gen === this.generation && this.state === "ready", cb);
  }

  private endGeneration(gen: number): void {
    this.generationEnds.end(gen);
  }

  private dropListeners(gen?: number): void {
    for (const [l, g] of this.forwards)
      if (gen === undefined || g === gen) {
        l.drop();
        this.forwards.delete(l);
      }
    for (const k of [...this.direct])
      if (gen === undefined || k.startsWith(`${gen} `)) this.direct.delete(k);
  }

  /** The master of generation `gen` is gone (or unusable): say why, then reconnect. */
  private async onDown(gen: number, why?: string): Promise<void> {
    if (gen !== this.generation || this.state !== "ready") return;
    const c = this.conn!;
    this.conn = undefined;
    this.state = "reconnecting";
    this.endGeneration(gen);
    this.slots.reset();
    this.dropListeners(gen);
    releaseConn(c, this.sshPath, this.t);
    // the master's last words (why it ended) may still be in its pipe
    if (!why && c.ended) await within(c.ended, 1000, undefined, { unref: true });
    const said = why ?? c.log?.recent().slice(-3).join("; ");
    const whose = c.owned ? "" : ` (your ControlMaster at ${c.controlPath} exited)`;
    this.lastError = new SidecarError(
      "SSH_CONNECT",
      `Lost the connection to \`${this.target}\`${whose}${said ? `: ${said}` : ""}`,
      { data: { target: this.target, generation: gen } },
    );
    if (this.state !== "reconnecting") return;
    this.setState("reconnecting", { error: this.lastError.message });
    this.emit("down", this.lastError);
    this.schedule();
  }

  private schedule(): void {
    const initialMs = this.opts.reconnect?.initialMs ?? 100;
    const maxMs = this.opts.reconnect?.maxMs ?? 10_000;
    const delay = Math.min(maxMs, initialMs * 2 ** this.attempt);
    this.attempt++;
    this.timer = setTimeout(() => void this.retry(), delay);
  }

  private async retry(): Promise<void> {
    if (this.state !== "reconnecting") return;
    try {
      const c = await this.openConnection();
      if (this.state !== "reconnecting") return releaseConn(c, this.sshPath, this.t);
      this.reconnects++;
      this.adopt(c);
    } catch (err) {
      if (this.state !== "reconnecting") return;
      this.lastError = toSidecarError(err, "SSH_CONNECT");
      if (this.lastError.code === "SSH_HOST_KEY") {
        this.setState("failed", { error: this.lastError.message, code: this.lastError.code });
        this.emit("failed", this.lastError);
        this.slots.wakeAll();
        return;
      }
      this.emit("state", this.state, {
        target: this.target,
        attempt: this.attempt,
        error: this.lastError.message,
      });
      this.schedule();
    }
  }

  async ready(timeoutMs: number): Promise<void> {
    if (this.state === "ready" && this.conn) return;
    if (this.state === "closed")
      throw new SidecarError("SSH_CONNECT", `The connection to \`${this.target}\` is closed`);
    if (this.state === "failed")
      throw (
        this.lastError ??
        new SidecarError("SSH_CONNECT", `The connection to \`${this.target}\` failed`)
      );
    await new Promise<void>((resolve, reject) => {
      const onReady = (): void => {
        cleanup();
        resolve();
      };
      const onEnd = (): void => {
        cleanup();
        reject(
          this.state === "failed" && this.lastError
            ? this.lastError
            : new SidecarError("SSH_CONNECT", `The connection to \`${this.target}\` is closed`),
        );
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new SidecarError(
            "SSH_CONNECT",
            `Not connected to \`${this.target}\` after waiting ${timeoutMs} ms (${this.state}${this.lastError ? `; last error: ${this.lastError.message}` : ""})`,
            { data: { target: this.target, state: this.state } },
          ),
        );
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off("ready", onReady);
        this.off("closed", onEnd);
        this.off("failed", onEnd);
      };
      this.on("ready", onReady);
      this.on("closed", onEnd);
      this.on("failed", onEnd);
    });
  }

  private track<T extends ChildChannel>(c: T): T {
    this.children.add(c);
    c.once("close", () => this.children.delete(c));
    return c;
  }

  /** A session running `command` (stdin from `stdinFd` when given) in a counted slot. */
  private async session(
    command: string,
    timeoutMs: number,
    stdinFd?: number,
  ): Promise<{ channel: OpenSshSession; release: () => void; generation: number }> {
    let lastNoMaster: SessionOpenError | undefined;
    try {
      const { value, slot } = await this.slots.open(
        timeoutMs,
        async (slot, remainingMs) => {
          const c = this.conn;
          if (!c || slot.generation !== this.generation)
            throw new SessionOpenError("no-master", "the connection changed");
          const args = [
            ...clientOptions(c.controlPath, this.t),
            ...SESSION_OPTIONS,
            "--",
            this.t.host,
            sessionCommand(command),
          ];
          const s = this.track(
            OpenSshSession.start(this.sshPath, args, {
              openTimeoutMs: Math.max(remainingMs, 10_000),
              ...(stdinFd !== undefined ? { stdin: stdinFd } : {}),
            }),
          );
          try {
            await s.whenOpen();
          } catch (err) {
            // a session that failed without a word while its master went away (the link's
            // connection dropped under it) waits for the reconnect like any other, not an error
            if (
              err instanceof SessionOpenError &&
              err.kind === "failed" &&
              err.said === "" &&
              (await within(
                this.ended(slot.generation).then(() => true),
                1000,
                false,
              ))
            )
              throw new SessionOpenError("no-master", "its master ended");
            if (err instanceof SessionOpenError && err.kind === "no-master") {
              lastNoMaster = err;
              // the master answers its watch but not at its socket (removed?): start afresh
              if (c.watch.isOpen && !existsSync(c.controlPath))
                void this.onDown(slot.generation, `its control socket ${c.controlPath} is gone`);
            }
            throw err;
          }
          return s;
        },
        (err) => err instanceof SessionOpenError && err.kind !== "failed",
      );
      return { channel: value, release: slot.release, generation: slot.generation };
    } catch (err) {
      if (err instanceof SessionOpenError) throw openFailed(this.target, err);
      if (lastNoMaster && err instanceof SidecarError && err.data?.transient)
        throw new SidecarError(
          "SSH_EXEC",
          `Cannot start a remote command on \`${this.target}\`: its ControlMaster at ${this.conn?.controlPath ?? "(none)"} did not take the session for ${timeoutMs} ms (${lastNoMaster.said})`,
          { cause: err, data: { target: this.target, transient: true } },
        );
      throw err;
    }
  }

  async exec(
    command: string,
    timeoutMs: number,
  ): Promise<{ channel: SessionChannel; release: () => void; generation: number }> {
    return await this.session(command, timeoutMs);
  }

  async listen(
    addr: string,
    port: number,
    accept: (conn: Duplex) => void,
  ): Promise<RemoteListener> {
    const { l, gen } = await this.forward(addr, port, {
      socketPath: this.paths.socket("f"),
      accept,
    });
    this.forwards.set(l, gen);
    return {
      port: l.port,
      close: async () => {
        this.forwards.delete(l);
        if (gen === this.generation && this.conn) await l.close();
        else l.drop();
      },
    };
  }

  async listenDirect(
    addr: string,
    port: number,
    to: { host: string; port: number },
  ): Promise<DirectListener | undefined> {
    await this.ready(this.waitMs);
    const log = this.conn?.log;
    if (!log) return undefined;
    const { l, gen } = await this.forward(addr, port, to);
    // the master answers an identical forward with the one it already has, on the same port:
    // a second tunnel to the same service then goes through the sidecar, on a port of its own
    const key = `${gen} ${addr} ${l.port} ${to.host}:${to.port}`;
    if (this.direct.has(key)) {
      l.drop();
      return undefined;
    }
    this.direct.add(key);
    this.forwards.set(l, gen);
    log.forwarded.watch(l.port);
    let closed = false;
    return {
      port: l.port,
      counts: () => log.forwarded.count(l.port),
      arrival: async (originatorPort, since, timeoutMs) => {
        const a = await log.forwarded.outcome(l.port, originatorPort, since, timeoutMs);
        if (!a?.outcome) return undefined;
        // the probe itself (without its port: most likely the one that arrived during it)
        log.forwarded.notCounted(a);
        return a.outcome.ok ? { ok: true } : { ok: false, error: a.outcome.reason };
      },
      close: async () => {
        if (closed) return;
        closed = true;
        this.direct.delete(key);
        this.forwards.delete(l);
        log.forwarded.unwatch(l.port);
        if (gen === this.generation && this.conn) await l.close();
        else l.drop();
      },
    };
  }

  /** `-O forward` on the connection up now; it must still be up when the master answered. */
  private async forward(
    addr: string,
    port: number,
    to: ForwardTo,
  ): Promise<{ l: OpenListener; gen: number }> {
    await this.ready(this.waitMs);
    const c = this.conn!;
    const gen = this.generation;
    const l = await remoteListen(this.forwardContext(c), to, addr, port, c.stale);
    if (gen !== this.generation || this.state !== "ready") {
      l.drop();
      throw new SidecarError(
        "SSH_CONNECT",
        `The connection to \`${this.target}\` was lost while asking it to listen on ${addr}:${port}`,
      );
    }
    return { l, gen };
  }

  private forwardContext(c: Conn): ForwardContext {
    const ctx: ForwardContext = { sshPath: this.sshPath, controlPath: c.controlPath, t: this.t };
    if (c.log) ctx.log = c.log;
    return ctx;
  }

  async connect(host: string, port: number, timeoutMs: number): Promise<Duplex> {
    const started = Date.now();
    await this.ready(timeoutMs);
    const d = await remoteConnect(
      this.forwardContext(this.conn!),
      host,
      port,
      Math.max(1, timeoutMs - (Date.now() - started)),
    );
    return this.track(d);
  }

  /** `cat > PATH` with the file as the session's stdin: the master reads the file itself. */
  putFile(localPath: string, remotePath: string): Promise<void> {
    return putFileThrough(
      (command, fd) => this.session(command, this.waitMs, fd),
      this.target,
      localPath,
      remotePath,
    );
  }

  info(): ConnectionInfo {
    const c = this.conn;
    const r = c?.resolved ?? this.lastResolved;
    return {
      target: this.target,
      transport: "openssh",
      state: this.state,
      host: r?.hostName ?? this.t.host,
      port: r?.port ?? 22,
      user: r?.user ?? "",
      jumps: r?.proxyJump ?? [],
      generation: this.generation,
      reconnects: this.reconnects,
      server_version: c?.log?.serverVersion ?? null,
      fingerprint: c?.log?.fingerprint ?? null,
      cipher: c?.log?.cipher ?? null,
      connected_at: c?.connectedAt ?? null,
      sessions: this.slots.sessions,
      queued_sessions: this.slots.queued,
      last_error: this.lastError?.message ?? null,
    };
  }

  close(): void {
    if (this.state === "closed") return;
    clearTimeout(this.timer);
    const c = this.conn;
    this.conn = undefined;
    this.setState("closed");
    this.endGeneration(this.generation);
    for (const ch of this.children) ch.close();
    for (const l of this.forwards.keys()) {
      // the user's master lives on: take back what was asked of it
      if (c && !c.owned) void l.close();
      else l.drop();
    }
    this.forwards.clear();
    this.direct.clear();
    if (c) releaseConn(c, this.sshPath, this.t);
    stopStrayMasters(this.paths.masterPrefix());
    this.emit("closed");
    this.slots.wakeAll();
  }
}
