/**
 * The ssh2 transport: one SSH connection to a target (through its jump hosts) in this process,
 * as an SshLink (src/ssh/link.ts). It survives: keepalive notices a dead link, reconnects run with
 * capped exponential backoff, and users hear `ready`/`down`.
 */
import { EventEmitter } from "node:events";
import { stat } from "node:fs/promises";
import type { Duplex } from "node:stream";
import type { Client, ClientChannel } from "ssh2";
import { SidecarError, toSidecarError } from "../../errors.js";
import { catUpload } from "../cat-upload.js";
import type { ResolvedHost } from "../config.js";
import { GenerationEnds } from "../generation-ends.js";
import type {
  ConnectionInfo,
  RemoteListener,
  SessionChannel,
  SshLink,
  SshState,
  TransportKind,
} from "../link.js";
import type { LinkSettings } from "../link-settings.js";
import { connectChain, type Hop } from "./connect.js";
import { openExec } from "./exec.js";
import { listenRemote } from "./forward.js";
import { SessionSlots } from "./sessions.js";
import { openSftp, sftpPut } from "./sftp.js";

/** Files larger than this go over SFTP (fastPut's parallel writes); smaller ones through `cat`. */
const SFTP_FROM_BYTES = 1024 * 1024;

/**
 * Events as SshLink says: `ready` (generation) after every successful connect, `down` (error) when
 * the link is lost, `failed` (error), `closed`, `state` (state, data).
 */
export class Ssh2Link extends EventEmitter implements SshLink {
  readonly transport: TransportKind = "ssh2";
  state: SshState = "connecting";
  generation = 0;
  reconnects = 0;
  lastError: SidecarError | undefined;
  /** questions to the user open for this connection now: waiters wait for them (ready) */
  asking = 0;
  private hops: Hop[] = [];
  private connectedAt: number | undefined;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly slots: SessionSlots;
  private readonly generationEnds = new GenerationEnds();

  constructor(
    readonly target: string,
    readonly chain: ResolvedHost[],
    private readonly settings: LinkSettings,
  ) {
    super();
    this.setMaxListeners(0);
    this.slots = new SessionSlots(
      target,
      settings.maxSessions,
      (ms) => this.clientReady(ms),
      () => this.generation,
    );
  }

  /** The target's ssh2 Client while connected. */
  private get client(): Client | undefined {
    return this.state === "ready" ? this.hops[this.hops.length - 1]?.client : undefined;
  }

  get host(): ResolvedHost {
    return this.chain[this.chain.length - 1]!;
  }

  /** First connect; errors are thrown as they are (no retry). */
  async open(): Promise<void> {
    const hops = await connectChain(this.chain, this.settings);
    if (this.state === "closed") {
      for (const h of hops) h.client.end();
      throw new SidecarError(
        "SSH_CONNECT",
        `The connection to \`${this.target}\` was closed while it was opening`,
      );
    }
    this.adopt(hops);
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

  private adopt(hops: Hop[]): void {
    this.hops = hops;
    this.generation++;
    this.attempt = 0;
    this.connectedAt = Date.now();
    const gen = this.generation;
    for (const h of hops) {
      h.client.on("error", (err: Error) => this.onDown(gen, err));
      h.client.on("close", () => this.onDown(gen));
    }
    this.setState("ready");
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

  private onDown(gen: number, err?: Error): void {
    if (gen !== this.generation || this.state !== "ready") return;
    this.endGeneration(gen);
    this.lastError = new SidecarError(
      "SSH_CONNECT",
      `Lost the connection to \`${this.target}\`${err ? `: ${err.message}` : ""}`,
      { cause: err },
    );
    for (const h of this.hops) h.client.end();
    this.hops = [];
    this.slots.dropAll();
    this.setState("reconnecting", { error: this.lastError.message });
    this.emit("down", this.lastError);
    this.schedule();
  }

  private schedule(): void {
    const { initialMs, maxMs } = this.settings.reconnect;
    const delay = Math.min(maxMs, initialMs * 2 ** this.attempt);
    this.attempt++;
    this.timer = setTimeout(() => void this.retry(), delay);
  }

  private async retry(): Promise<void> {
    if (this.state !== "reconnecting") return;
    try {
      const hops = await connectChain(this.chain, this.settings);
      if (this.state !== "reconnecting") {
        for (const h of hops) h.client.end();
        return;
      }
      this.reconnects++;
      this.adopt(hops);
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
    await this.clientReady(timeoutMs);
  }

  /** The client once connected, waiting up to `timeoutMs` through a reconnect. */
  private async clientReady(timeoutMs: number): Promise<Client> {
    const c = this.client;
    if (c) return c;
    if (this.state === "closed")
      throw new SidecarError("SSH_CONNECT", `The connection to \`${this.target}\` is closed`);
    if (this.state === "failed")
      throw (
        this.lastError ??
        new SidecarError("SSH_CONNECT", `The connection to \`${this.target}\` failed`)
      );
    return await new Promise<Client>((resolve, reject) => {
      const onReady = (): void => {
        const client = this.client;
        if (!client) return;
        cleanup();
        resolve(client);
      };
      const onEnd = (): void => {
        cleanup();
        reject(
          this.state === "failed" && this.lastError
            ? this.lastError
            : new SidecarError("SSH_CONNECT", `The connection to \`${this.target}\` is closed`),
        );
      };
      const expire = (): void => {
        // a user typing a code for the reconnect is not a dead link: wait for the answer
        if (this.asking > 0) {
          timer = setTimeout(expire, 1000);
          return;
        }
        cleanup();
        reject(
          new SidecarError(
            "SSH_CONNECT",
            `Not connected to \`${this.target}\` after waiting ${timeoutMs} ms (${this.state}${this.lastError ? `; last error: ${this.lastError.message}` : ""})`,
            { data: { target: this.target, state: this.state } },
          ),
        );
      };
      let timer = setTimeout(expire, timeoutMs);
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

  async exec(
    command: string,
    timeoutMs: number,
  ): Promise<{ channel: SessionChannel; release: () => void; generation: number }> {
    const { value, release, generation } = await this.slots.open(timeoutMs, (client) =>
      openExec(client, command),
    );
    return { channel: value, release, generation };
  }

  /**
   * sshd on the target listens (forward.ts). Only on the connection up now: a listener belongs to
   * its connection, and after a reconnect its owner listens again (on `ready`).
   */
  async listen(
    addr: string,
    port: number,
    accept: (conn: Duplex) => void,
  ): Promise<RemoteListener> {
    const client = this.client;
    if (!client)
      throw new SidecarError(
        "SSH_CONNECT",
        `Not connected to \`${this.target}\` (${this.state}${this.lastError ? `; last error: ${this.lastError.message}` : ""})`,
        { data: { target: this.target, state: this.state } },
      );
    return await listenRemote(client, addr, port, accept);
  }

  /** A direct-tcpip channel from the target to host:port. */
  async connect(host: string, port: number, timeoutMs: number): Promise<Duplex> {
    const client = await this.clientReady(timeoutMs);
    return await new Promise<ClientChannel>((resolve, reject) => {
      client.forwardOut("127.0.0.1", 0, host, port, (err, ch) =>
        err
          ? reject(
              new SidecarError(
                "SSH_CONNECT",
                `\`${this.target}\` could not connect to ${host}:${port}: ${err.message}`,
                { cause: err },
              ),
            )
          : resolve(ch),
      );
    });
  }

  /** SFTP's fastPut for a large file, a `cat` stream for a small one. */
  async putFile(localPath: string, remotePath: string): Promise<void> {
    const waitMs = this.settings.waitReadyMs;
    if ((await stat(localPath)).size > SFTP_FROM_BYTES) {
      const { value: sftp, release } = await this.slots.open(waitMs, (client) =>
        openSftp(client, this.target),
      );
      await sftpPut(sftp, release, this.target, localPath, remotePath);
      return;
    }
    await catUpload(this, waitMs, localPath, remotePath);
  }

  info(): ConnectionInfo {
    const last = this.hops[this.hops.length - 1];
    return {
      target: this.target,
      transport: this.transport,
      state: this.state,
      host: this.host.hostName,
      port: this.host.port,
      user: this.host.user,
      jumps: this.chain.slice(0, -1).map((h) => h.target),
      generation: this.generation,
      reconnects: this.reconnects,
      server_version: last?.serverVersion ?? null,
      fingerprint: last?.fingerprint ?? null,
      cipher: last?.cipher ?? null,
      connected_at: this.connectedAt ?? null,
      sessions: this.slots.inUse,
      queued_sessions: this.slots.queued,
      last_error: this.lastError?.message ?? null,
    };
  }

  /** End the connection for good. */
  close(): void {
    if (this.state === "closed") return;
    clearTimeout(this.timer);
    const hops = this.hops;
    this.hops = [];
    this.setState("closed");
    this.endGeneration(this.generation);
    for (const h of hops.reverse()) h.client.end();
    this.emit("closed");
    this.slots.wakeAll();
  }
}
