/**
 * SshLink over the user's own OpenSSH: one ControlMaster per target (the user's, when their
 * ssh_config names a ControlPath and a master runs there, else one the sidecar starts in its
 * private runtime directory) and everything through it: sessions (`ssh -S`), remote forwards
 * (`-O forward`/`-O cancel`), connections (`-W`), file copies. Liveness is the master itself: a
 * connection held to its socket closes when it exits (ServerAlive ends it on a dead network);
 * then the link reconnects with a new master, with the same backoff as the ssh2 link.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { open as openFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { SidecarError, toSidecarError } from "../../errors.js";
import { ensurePrivateDir } from "../../util/private-dir.js";
import { shellQuote } from "../../util/shell-quote.js";
import { within } from "../../util/timeout.js";
import type { ConnectionInfo, RemoteListener, SessionChannel, SshLink, SshState } from "../link.js";
import type { ChildChannel } from "./channel.js";
import {
  type ForwardContext,
  type OpenListener,
  remoteConnect,
  remoteListen,
  StaleForwards,
} from "./forwards.js";
import {
  type AskpassHook,
  clientOptions,
  type MasterSettings,
  masterRunning,
  startMaster,
} from "./master.js";
import type { MasterLog } from "./master-log.js";
import { MuxWatch } from "./mux-watch.js";
import {
  builtinCiphers,
  type OpenSshTarget,
  openSshTarget,
  preferredCiphers,
  type Resolved,
  resolveOpenSsh,
} from "./resolve.js";
import { runSsh } from "./run.js";
import { OpenSshSession, openFailed, SessionOpenError, sessionCommand } from "./session.js";
import { SessionSlots } from "./slots.js";
import { atLeast, checkSshVersion, MIN_OPENSSH_ASKPASS, sshVersion } from "./version.js";

export interface OpenSshLinkOptions {
  /** the sidecar's private runtime directory; sockets go to DIR/ssh (mode 0700) */
  runtimeDir: string;
  /** `-F` file; without it ssh reads ~/.ssh/config and /etc/ssh/ssh_config as `ssh TARGET` does */
  configPath?: string;
  /** @default "ssh" */
  sshPath?: string;
  /** ask through this program (SSH_ASKPASS) instead of BatchMode; for prompts routed to the user */
  askpass?: AskpassHook;
  /** ServerAliveInterval when the config sets none @default 15000 */
  keepaliveMs?: number;
  /** ServerAliveCountMax then @default 3 */
  keepaliveCount?: number;
  /** ConnectTimeout when the config sets none @default 20000 */
  connectTimeoutMs?: number;
  /** bound on a master's whole start, authentication included @default 60000 */
  startTimeoutMs?: number;
  /**
   * our master's ControlPersist: it ends this long after its last client; the link is one
   * while open, so this is how long a master outlives a sidecar that died @default 60
   */
  persistSeconds?: number;
  /** @default { initialMs: 100, maxMs: 10000 } */
  reconnect?: { initialMs?: number; maxMs?: number };
  /** session channels at once; OpenSSH's MaxSessions is 10 @default 10 */
  maxSessions?: number;
  /** how long listen, connect-less calls and putFile wait for a reconnect @default 30000 */
  waitReadyMs?: number;
  /** use the user's running ControlMaster when their config names a ControlPath @default true */
  reuseUserMaster?: boolean;
  log?: (msg: string, data?: Record<string, unknown>) => void;
}

interface Conn {
  controlPath: string;
  /** false: the user's master, never stopped here */
  owned: boolean;
  watch: MuxWatch;
  stale: StaleForwards;
  log?: MasterLog;
  ended?: Promise<void>;
  connectedAt: number;
}

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
/** a Unix socket path holds 107 bytes; ssh adds 17 for its temporary name */
const SOCKET_PATH_MAX = 90;

export class OpenSshLink extends EventEmitter implements SshLink {
  readonly transport = "openssh" as const;
  state: SshState = "connecting";
  generation = 0;
  reconnects = 0;
  lastError: SidecarError | undefined;
  private conn: Conn | undefined;
  private resolved: Resolved | undefined;
  private readonly t: OpenSshTarget;
  private readonly sshPath: string;
  private readonly slots: SessionSlots;
  private readonly generationEnds = new Map<
    number,
    { ended: Promise<void>; resolve: () => void }
  >();
  private readonly children = new Set<ChildChannel>();
  private readonly forwards = new Map<OpenListener, number>();
  private readonly id = randomBytes(3).toString("hex");
  private dir: string | undefined;
  private nextSocket = 0;
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

  private socketPath(kind: "m" | "f"): string {
    if (!this.dir) {
      const dir = ensurePrivateDir(join(this.opts.runtimeDir, "ssh"));
      this.dir = dir.length + 16 <= SOCKET_PATH_MAX ? dir : mkdtempSync(join(tmpdir(), "psc-ssh-"));
    }
    return join(this.dir, `${kind}-${this.id}-${this.nextSocket++}`);
  }

  private settings(): MasterSettings {
    const o = this.opts;
    const s: MasterSettings = {
      sshPath: this.sshPath,
      keepaliveMs: o.keepaliveMs ?? 15_000,
      keepaliveCount: o.keepaliveCount ?? 3,
      connectTimeoutMs: o.connectTimeoutMs ?? 20_000,
      startTimeoutMs: o.startTimeoutMs ?? 60_000,
      persistSeconds: o.persistSeconds ?? 60,
    };
    if (o.askpass) s.askpass = o.askpass;
    return s;
  }

  /** One connect: the user's master when one runs at their ControlPath, else a new one. */
  private async connectOnce(): Promise<Conn> {
    const version = await sshVersion(this.sshPath);
    if (this.opts.askpass && !atLeast(version, MIN_OPENSSH_ASKPASS))
      checkSshVersion(
        this.sshPath,
        version.text,
        MIN_OPENSSH_ASKPASS,
        "asking through SSH_ASKPASS",
      );
    const r = await resolveOpenSsh(this.sshPath, this.t);
    this.resolved = r;
    if (this.opts.reuseUserMaster !== false && r.controlPath) {
      if (await masterRunning(this.sshPath, this.t, r.controlPath)) {
        const watch = await MuxWatch.open(r.controlPath, 10_000);
        this.opts.log?.(`using your ControlMaster at ${r.controlPath} (pid ${watch.pid})`, {
          target: this.target,
        });
        return {
          controlPath: r.controlPath,
          owned: false,
          watch,
          stale: new StaleForwards(),
          connectedAt: Date.now(),
        };
      }
    }
    const path = this.socketPath("m");
    const ciphers = preferredCiphers(r.ciphers, await builtinCiphers(this.sshPath));
    const ctx = {
      target: this.target,
      alias: this.t.host,
      resolved: r,
      batch: !this.opts.askpass,
      ...(this.t.configPath ? { configPath: this.t.configPath } : {}),
    };
    const m = await startMaster(this.t, r, path, this.settings(), ctx, ciphers);
    let watch: MuxWatch;
    try {
      watch = await MuxWatch.open(path, 10_000);
    } catch (err) {
      void runSsh(this.sshPath, ["-O", "exit", ...clientOptions(path, this.t), "--", this.t.host], {
        timeoutMs: 5_000,
      }).catch(() => undefined);
      throw err;
    }
    for (const note of m.log.notes) this.opts.log?.(note, { target: this.target });
    return {
      controlPath: path,
      owned: true,
      watch,
      stale: new StaleForwards(),
      log: m.log,
      ended: m.ended,
      connectedAt: Date.now(),
    };
  }

  /** End a connection: ours is stopped, the user's only let go. */
  private release(c: Conn): void {
    const alive = c.watch.isOpen;
    c.watch.close();
    if (!c.owned) return;
    if (!alive) {
      // a master killed hard leaves its socket behind
      rmSync(c.controlPath, { force: true });
      return;
    }
    if (ownsPid(c.watch.pid, c.controlPath)) {
      try {
        process.kill(c.watch.pid, "SIGTERM");
        return;
      } catch {
        /* gone */
      }
    }
    // no /proc to check the pid against: ask the master itself
    void runSsh(
      this.sshPath,
      ["-O", "exit", ...clientOptions(c.controlPath, this.t), "--", this.t.host],
      { timeoutMs: 5_000 },
    ).catch(() => undefined);
  }

  async open(): Promise<void> {
    const c = await this.connectOnce();
    if (this.state === "closed") {
      this.release(c);
      throw new SidecarError(
        "SSH_CONNECT",
        `The connection to \`${this.target}\` was closed while it was opening`,
      );
    }
    this.adopt(c);
  }

  private adopt(c: Conn): void {
    this.conn = c;
    this.generation++;
    this.attempt = 0;
    const gen = this.generation;
    c.watch.once("closed", () => void this.onDown(gen));
    this.setState("ready", { shared_master: !c.owned });
    this.emit("ready", gen);
  }

  ended(gen: number): Promise<void> {
    if (gen !== this.generation || this.state !== "ready") return Promise.resolve();
    let entry = this.generationEnds.get(gen);
    if (!entry) {
      let resolve!: () => void;
      entry = { ended: new Promise<void>((r) => (resolve = r)), resolve };
      this.generationEnds.set(gen, entry);
    }
    return entry.ended;
  }

  private endGeneration(gen: number): void {
    this.generationEnds.get(gen)?.resolve();
    this.generationEnds.delete(gen);
  }

  private dropListeners(gen?: number): void {
    for (const [l, g] of this.forwards)
      if (gen === undefined || g === gen) {
        l.drop();
        this.forwards.delete(l);
      }
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
    this.release(c);
    if (!why && c.ended) await within(c.ended, 300, undefined, { unref: true });
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
      const c = await this.connectOnce();
      if (this.state !== "reconnecting") return this.release(c);
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
    await this.ready(this.waitMs);
    const c = this.conn!;
    const gen = this.generation;
    const l = await remoteListen(
      this.forwardContext(c),
      this.socketPath("f"),
      addr,
      port,
      accept,
      c.stale,
    );
    if (gen !== this.generation || this.state !== "ready") {
      l.drop();
      throw new SidecarError(
        "SSH_CONNECT",
        `The connection to \`${this.target}\` was lost while asking it to listen on ${addr}:${port}`,
      );
    }
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
  async putFile(localPath: string, remotePath: string): Promise<void> {
    const fh = await openFile(localPath, "r").catch((err: Error) => {
      throw new SidecarError("SSH_EXEC", `Cannot read ${localPath}: ${err.message}`, {
        cause: err,
      });
    });
    try {
      const { channel, release } = await this.session(
        `cat > ${shellQuote(remotePath)}`,
        this.waitMs,
        fh.fd,
      );
      let stderr = "";
      channel.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
      channel.resume();
      const status = await new Promise<{ code: number | null; signal?: string } | undefined>(
        (resolve) => {
          let st: { code: number | null; signal?: string } | undefined;
          channel.on("exit", (code: number | null, signal?: string) => {
            st = signal ? { code, signal } : { code };
          });
          channel.on("close", () => resolve(st));
        },
      );
      release();
      if (status?.code !== 0)
        throw new SidecarError(
          !status ? "SSH_CONNECT" : "SSH_EXEC",
          `Cannot copy ${localPath} to ${this.target}:${remotePath}: ${
            !status
              ? "the connection was lost"
              : stderr.trim() ||
                (status.signal ? `killed by SIG${status.signal}` : `exit code ${status.code}`)
          }`,
          { data: { target: this.target, path: remotePath } },
        );
    } finally {
      await fh.close();
    }
  }

  info(): ConnectionInfo {
    const r = this.resolved;
    const c = this.conn;
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
    if (c) this.release(c);
    this.emit("closed");
    this.slots.wakeAll();
  }
}

/** True when `pid` is the ssh master listening at `controlPath` (checked in /proc). */
function ownsPid(pid: number, controlPath: string): boolean {
  try {
    // the whole command line: some systems rewrite it to `ssh: PATH [mux]`
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(controlPath);
  } catch {
    return false;
  }
}
