/**
 * One SSH connection to a target (through its jump hosts) that survives: keepalive notices a
 * dead link, reconnects run with capped exponential backoff, and users hear `ready`/`down`.
 */
import { EventEmitter } from "node:events";
import type { Client, ClientChannel } from "ssh2";
import { SidecarError, toSidecarError } from "../errors.js";
import type { ResolvedHost } from "./config.js";
import { connectChain, type Hop, type HopSettings } from "./connect.js";

export type SshState = "connecting" | "ready" | "reconnecting" | "closed" | "failed";

export interface ReconnectPolicy {
  /** first retry after this many ms @default 100 */
  initialMs: number;
  /** delays double up to this @default 10000 */
  maxMs: number;
}

export interface ConnectionSettings extends HopSettings {
  reconnect: ReconnectPolicy;
  /** concurrent session channels (exec, spawn, sftp) per connection; OpenSSH's MaxSessions is 10 @default 10 */
  maxSessions: number;
}

export interface ConnectionInfo {
  target: string;
  state: SshState;
  host: string;
  port: number;
  user: string;
  jumps: string[];
  generation: number;
  reconnects: number;
  server_version: string | null;
  fingerprint: string | null;
  cipher: string | null;
  connected_at: number | null;
  sessions: number;
  queued_sessions: number;
  last_error: string | null;
}

/**
 * Events: `ready` (client, generation) after every successful connect, `down` (error) when the
 * link is lost, `state` (state, data).
 */
export class SshConnection extends EventEmitter {
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
  private sessions = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly generationEnds = new Map<
    number,
    { ended: Promise<void>; resolve: () => void }
  >();

  constructor(
    readonly target: string,
    readonly chain: ResolvedHost[],
    private readonly settings: ConnectionSettings,
  ) {
    super();
    this.setMaxListeners(0);
  }

  /** The target's ssh2 Client while connected. */
  get client(): Client | undefined {
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
    this.emit("ready", this.client, gen);
  }

  /**
   * Resolves once connection generation `gen` is gone (at once if it already is). A channel on
   * a connection that died does not always close (ssh2 closes channels only on a clean end), so
   * exec and spawn use this to stop waiting for it.
   */
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
    this.sessions = 0;
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
        for (const w of this.waiting.splice(0)) w();
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

  /** The client once connected, waiting up to `timeoutMs` through a reconnect. */
  async ready(timeoutMs: number): Promise<Client> {
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
      const onReady = (client: Client): void => {
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

  /** Take a session slot (exec, spawn, sftp); `release` gives it back. Callers use channel(). */
  private async session(
    timeoutMs: number,
  ): Promise<{ client: Client; release: () => void; generation: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const client = await this.ready(Math.max(1, deadline - Date.now()));
      if (this.sessions < this.settings.maxSessions) {
        this.sessions++;
        const gen = this.generation;
        let released = false;
        return {
          client,
          generation: gen,
          release: () => {
            if (released) return;
            released = true;
            if (gen === this.generation) this.sessions = Math.max(0, this.sessions - 1);
            this.waiting.shift()?.();
          },
        };
      }
      await new Promise<void>((resolve, reject) => {
        const wake = (): void => {
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(
          () => {
            const i = this.waiting.indexOf(wake);
            if (i >= 0) this.waiting.splice(i, 1);
            reject(
              new SidecarError(
                "SSH_EXEC",
                `No free session channel on \`${this.target}\` after ${timeoutMs} ms: ${this.settings.maxSessions} are in use (sshd's MaxSessions)`,
              ),
            );
          },
          Math.max(1, deadline - Date.now()),
        );
        this.waiting.push(wake);
      });
    }
  }

  /**
   * A session slot with a channel opened in it by `open`. sshd may still refuse the channel
   * ("Channel open failure: open failed") although this side counts a free slot: sshd frees a
   * closed session only when it next collects dead channels, so an open sent right behind a
   * close can find it still full (this side at its limit; seen once in CI as a staging test's
   * STAGING_FAILED), and an admin may set MaxSessions below ours. That refusal is waited out
   * (backing off) until `timeoutMs`, then named; any other failure is thrown at once.
   */
  async channel<T>(
    timeoutMs: number,
    open: (client: Client) => Promise<T>,
  ): Promise<{ value: T; release: () => void; generation: number }> {
    const deadline = Date.now() + timeoutMs;
    for (let delay = 25; ; delay = Math.min(delay * 2, 1000)) {
      const { client, release, generation } = await this.session(
        Math.max(1, deadline - Date.now()),
      );
      try {
        return { value: await open(client), release, generation };
      } catch (err) {
        release();
        if (!isChannelRefused(err)) throw err;
        if (Date.now() >= deadline) {
          throw new SidecarError(
            "SSH_EXEC",
            `\`${this.target}\` refused a new session channel for ${timeoutMs} ms (${this.sessions} open from here): sshd's MaxSessions is reached, by sessions it has not freed yet after they closed or by a server MaxSessions lower than this side's ${this.settings.maxSessions} while long-running commands (worker blocks, relays, watchdogs) hold the rest`,
            { cause: err, data: { target: this.target, transient: true } },
          );
        }
        await new Promise((r) =>
          setTimeout(r, Math.min(delay, Math.max(1, deadline - Date.now()))),
        );
      }
    }
  }

  /** A direct-tcpip channel from the target to host:port. */
  async forwardOut(
    srcHost: string,
    srcPort: number,
    dstHost: string,
    dstPort: number,
    timeoutMs: number,
  ): Promise<ClientChannel> {
    const client = await this.ready(timeoutMs);
    return await new Promise((resolve, reject) => {
      client.forwardOut(srcHost, srcPort, dstHost, dstPort, (err, ch) =>
        err
          ? reject(
              new SidecarError(
                "SSH_CONNECT",
                `\`${this.target}\` could not connect to ${dstHost}:${dstPort}: ${err.message}`,
                { cause: err },
              ),
            )
          : resolve(ch),
      );
    });
  }

  info(): ConnectionInfo {
    const last = this.hops[this.hops.length - 1];
    return {
      target: this.target,
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
      sessions: this.sessions,
      queued_sessions: this.waiting.length,
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
    for (const w of this.waiting.splice(0)) w();
  }
}

/** ssh2's error for a channel the server refused to open (SSH_MSG_CHANNEL_OPEN_FAILURE). */
export function isChannelRefused(err: unknown): boolean {
  const e = (err as { cause?: unknown })?.cause ?? err;
  return (
    e instanceof Error &&
    /Channel open failure/i.test(e.message) &&
    typeof (e as { reason?: unknown }).reason === "number"
  );
}
