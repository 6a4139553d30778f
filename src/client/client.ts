/**
 * The TypeScript RPC client, used by the CLI and by other Node tools. One DEALER socket,
 * many concurrent calls matched to replies by id, progress and events delivered to callbacks.
 */
import { randomBytes } from "node:crypto";
import { SidecarError } from "../errors.js";
import type { SidecarEvent } from "../events.js";
import {
  CONNECTION_ENV,
  type ConnectionInfo,
  defaultRuntimeDir,
  CONNECTION_FILE_NAME,
  readConnectionFile,
} from "../rpc/connection-file.js";
import { PROTOCOL_VERSION, pack, unpack, type Header } from "../rpc/envelope.js";
import { limitsOf, messageTooLarge, type PublishedLimits } from "../rpc/limits.js";
import { ZmtpDealer } from "../rpc/zmtp/dealer.js";
import { join } from "node:path";

export interface CallOptions {
  /** milliseconds before the call fails with TIMEOUT (default 30 s; 0 waits forever) */
  timeout?: number;
  onProgress?: (data: Record<string, unknown>) => void;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: unknown): void;
  timer: NodeJS.Timeout | undefined;
  /** (re)start the call's timer with its full timeout; undefined when it waits forever */
  arm: (() => void) | undefined;
  onProgress: ((data: Record<string, unknown>) => void) | undefined;
  method: string;
}

/** Find the connection file: explicit path, $PARSL_SIDECAR_CONNECTION_FILE, or the default runtime dir (an empty value counts as unset). */
export function resolveConnectionFile(path?: string, env: NodeJS.ProcessEnv = process.env): string {
  return path || env[CONNECTION_ENV] || join(defaultRuntimeDir(env), CONNECTION_FILE_NAME);
}

export class SidecarClient {
  private readonly socket: ZmtpDealer;
  private readonly pending = new Map<string, Pending>();
  private readonly key: Buffer;
  /** this client's session: every message id is `SESSION-N` (prompts name it as their cause) */
  readonly session = randomBytes(6).toString("hex");
  private paused = 0;
  private readonly eventHandlers = new Set<(e: SidecarEvent) => void>();
  private counter = 0;
  private closed = false;
  private renew: NodeJS.Timeout | undefined;
  /** the sidecar's limits, from its connection file (the defaults for an older sidecar's file) */
  readonly limits: PublishedLimits;

  private constructor(readonly info: ConnectionInfo) {
    this.key = Buffer.from(info.key, "hex");
    this.limits = limitsOf(info);
    this.socket = new ZmtpDealer(info.endpoint, {
      onMessage: (frames) => this.receive(frames),
      maxMessageBytes: this.limits.message_bytes,
    });
  }

  /** Connect using a connection file (see resolveConnectionFile). */
  static connect(path?: string): SidecarClient {
    const file = resolveConnectionFile(path);
    const info = readConnectionFile(file);
    if (info.protocol_version !== PROTOCOL_VERSION) {
      throw new SidecarError(
        "VERSION_MISMATCH",
        `The sidecar at ${file} speaks protocol ${info.protocol_version}; this client speaks ${PROTOCOL_VERSION}`,
      );
    }
    return new SidecarClient(info);
  }

  static fromInfo(info: ConnectionInfo): SidecarClient {
    return new SidecarClient(info);
  }

  call<T = unknown>(
    method: string,
    params: Record<string, unknown> = {},
    opts: CallOptions = {},
  ): Promise<T> {
    if (this.closed) return Promise.reject(new SidecarError("UNREACHABLE", "The client is closed"));
    const id = `${this.session}-${(this.counter++).toString(36)}`;
    const header: Header = { v: PROTOCOL_VERSION, id, type: "request", method, ts: Date.now() };
    const timeout = opts.timeout ?? 30_000;
    try {
      // sent before the call is pending: a message over the sidecar's limit fails here, at once
      this.socket.send(pack(this.key, header, params));
    } catch (err) {
      if (err instanceof SidecarError && err.code === "RPC_MESSAGE_TOO_LARGE")
        return Promise.reject(messageTooLarge(method, err.data?.size as number, this.limits));
      return Promise.reject(err);
    }
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = {
        resolve: resolve as (v: unknown) => void,
        reject,
        timer: undefined,
        arm: undefined,
        onProgress: opts.onProgress,
        method,
      };
      if (timeout > 0) {
        entry.arm = () => {
          clearTimeout(entry.timer);
          entry.timer = setTimeout(() => {
            this.pending.delete(id);
            reject(
              new SidecarError(
                "TIMEOUT",
                `No reply to ${method} within ${timeout} ms from the sidecar at ${this.info.endpoint} (pid ${this.info.pid}); is it running?`,
                { data: { method, timeout_ms: timeout } },
              ),
            );
          }, timeout);
        };
        if (this.paused === 0) entry.arm();
      }
      this.pending.set(id, entry);
    });
  }

  /**
   * Stop every call's timeout (a server's question is waiting for the user, who may take
   * minutes); the returned function starts them again, each with its full time.
   */
  pauseTimeouts(): () => void {
    this.paused++;
    for (const p of this.pending.values()) clearTimeout(p.timer);
    let resumed = false;
    return () => {
      if (resumed) return;
      resumed = true;
      this.paused--;
      if (this.paused === 0) for (const p of this.pending.values()) p.arm?.();
    };
  }

  /** Receive events (topics by prefix, all when empty); the lease is renewed while subscribed. */
  async subscribe(
    topics: string[],
    handler: (e: SidecarEvent) => void,
    opts: { history?: boolean } = {},
  ): Promise<() => Promise<void>> {
    this.eventHandlers.add(handler);
    const res = await this.call<{ lease_ms: number; history: SidecarEvent[] }>(
      "sidecar.subscribe",
      { topics, history: opts.history ?? false },
    );
    for (const e of res.history) handler(e);
    clearInterval(this.renew);
    this.renew = setInterval(
      () => void this.call("sidecar.subscribe", { topics }).catch(() => undefined),
      Math.max(1000, res.lease_ms / 3),
    );
    this.renew.unref();
    return async () => {
      this.eventHandlers.delete(handler);
      if (this.eventHandlers.size === 0) {
        clearInterval(this.renew);
        await this.call("sidecar.unsubscribe").catch(() => undefined);
      }
    };
  }

  private receive(frames: Buffer[]): void {
    const msg = unpack(this.key, frames);
    if (!msg.ok) return; // unsigned traffic is ignored, as on the server
    const { header, body } = msg;
    if (header.type === "event") {
      for (const h of this.eventHandlers) h(body as SidecarEvent);
      return;
    }
    const p = header.reply_to ? this.pending.get(header.reply_to) : undefined;
    if (!p) return;
    if (header.type === "progress") {
      p.onProgress?.(body as Record<string, unknown>);
      return;
    }
    this.pending.delete(header.reply_to!);
    clearTimeout(p.timer);
    const reply = body as {
      result?: unknown;
      error?: { code: string; message: string; data?: Record<string, unknown> };
    };
    if (reply.error) p.reject(SidecarError.fromPayload(reply.error));
    else p.resolve(reply.result);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.renew);
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(
        new SidecarError("UNREACHABLE", `The client closed before ${p.method} was answered`),
      );
      this.pending.delete(id);
    }
    this.socket.close();
  }
}
