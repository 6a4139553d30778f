/**
 * A ZeroMQ DEALER socket in Node itself: ZMTP 3.1 with the NULL mechanism over Unix sockets
 * (ipc://) and TCP (tcp://), talking to one ROUTER (ours, or any libzmq 4+ ROUTER).
 *
 * Why not libzmq (zeromq.js): it is a native addon, and the CLI is shipped as pure JavaScript so
 * that one bundle runs from npm and from the Python wheel on any platform without a compiler
 * (docs/architecture.md). The client needs little of a DEALER: one connection, messages queued
 * until the handshake is done, reconnection every `reconnectMs` as libzmq's default
 * `reconnect_ivl` (100 ms) does, PING answered with PONG.
 *
 * As a libzmq DEALER: a message sent before the connection is up waits for it; a message being
 * written when the connection drops is lost (the caller's timeout reports it).
 */
import { constants } from "node:buffer";
import { connect, type Socket } from "node:net";
import { SidecarError } from "../../errors.js";
import {
  ByteReader,
  checkGreeting,
  COMMAND,
  command,
  encodeMessage,
  frameHeader,
  greeting,
  GREETING_BYTES,
  MORE,
  messageBytes,
  parseCommand,
  parseProperties,
  properties,
} from "./wire.js";

export interface DealerOptions {
  /** Called with each message received (its frames). */
  onMessage: (frames: Buffer[]) => void;
  /** Called when a connection is closed for breaking the protocol (what the peer did). */
  onProtocolError?: (detail: string) => void;
  /** Milliseconds between connection attempts. @default 100 (libzmq's reconnect_ivl) */
  reconnectMs?: number;
  /**
   * The largest message the peer takes (the bytes of its frames): `send` refuses a larger one,
   * which the peer would answer by closing the connection (docs/protocol.md, Limits).
   * @default no limit
   */
  maxMessageBytes?: number;
}

/** Peer socket types a DEALER talks to (ZMTP 28/REQREP). */
const PEER_TYPES = new Set(["ROUTER", "DEALER", "REP"]);
const MAX_COMMAND_BYTES = 64 * 1024;
/** Messages up to this size are copied into one buffer; larger ones are written part by part. */
const COPY_BYTES = 64 * 1024;

type Stage = "connecting" | "greeting" | "handshake" | "ready";

/** Where `endpoint` (`ipc://PATH` or `tcp://HOST:PORT`) is, for net.connect. */
export function parseEndpoint(endpoint: string): { path: string } | { host: string; port: number } {
  if (endpoint.startsWith("ipc://")) return { path: endpoint.slice(6) };
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(endpoint);
  if (!m) throw new Error(`Cannot connect to ${endpoint}: expected ipc://PATH or tcp://HOST:PORT`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, "$1"), port: Number(m[2]) };
}

export class ZmtpDealer {
  private socket: Socket | undefined;
  private stage: Stage = "connecting";
  private reader = new ByteReader();
  private parts: Buffer[] = [];
  /** Encoded messages waiting for the handshake. */
  private queue: Buffer[][] = [];
  private retry: NodeJS.Timeout | undefined;
  private readonly target: { path: string } | { host: string; port: number };
  private readonly reconnectMs: number;
  private readonly ours = Buffer.concat([
    greeting(),
    command("READY", properties({ "Socket-Type": "DEALER", Identity: "" })),
  ]);
  closed = false;

  constructor(
    readonly endpoint: string,
    private readonly opts: DealerOptions,
  ) {
    this.target = parseEndpoint(endpoint);
    this.reconnectMs = opts.reconnectMs ?? 100;
    this.dial();
  }

  /**
   * Sends one message (its frames); it waits for the connection when there is none yet.
   * Throws RPC_MESSAGE_TOO_LARGE, sending nothing, for a message over `maxMessageBytes`.
   */
  send(frames: readonly Buffer[]): void {
    if (this.closed) return;
    const limit = this.opts.maxMessageBytes;
    if (limit !== undefined) {
      let size = 0;
      for (const f of frames) size += f.length;
      if (size > limit)
        throw new SidecarError(
          "RPC_MESSAGE_TOO_LARGE",
          `A message of ${size} bytes is over the limit of ${limit} bytes of ${this.endpoint}; it was not sent`,
          { data: { size, limit } },
        );
    }
    if (this.stage !== "ready" || !this.socket) {
      this.queue.push([...frames]);
      return;
    }
    this.write(this.socket, frames);
  }

  /** Closes the connection; queued messages are dropped (linger 0). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retry);
    this.queue = [];
    this.socket?.destroy();
    this.socket = undefined;
  }

  private write(socket: Socket, parts: readonly Buffer[]): void {
    if (messageBytes(parts) <= COPY_BYTES) {
      socket.write(encodeMessage(parts));
      return;
    }
    socket.cork();
    for (let i = 0; i < parts.length; i++) {
      socket.write(frameHeader(i < parts.length - 1 ? MORE : 0, parts[i]!.length));
      socket.write(parts[i]!);
    }
    socket.uncork();
  }

  private dial(): void {
    if (this.closed) return;
    this.stage = "connecting";
    this.reader = new ByteReader();
    this.parts = [];
    const socket = connect({ ...this.target, ...("port" in this.target ? { noDelay: true } : {}) });
    this.socket = socket;
    socket.on("connect", () => {
      this.stage = "greeting";
      socket.write(this.ours);
    });
    socket.on("data", (chunk: Buffer) => {
      if (this.socket !== socket) return;
      this.reader.push(chunk);
      try {
        this.read(socket);
      } catch (err) {
        this.stage = "connecting"; // reported once: its close is no news
        this.opts.onProtocolError?.((err as Error).message);
        socket.destroy();
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      if (this.socket !== socket || this.closed) return;
      // libzmq hangs up on a socket type it cannot pair with, without a word
      if (this.stage === "greeting" || this.stage === "handshake")
        this.opts.onProtocolError?.("the peer hung up during the handshake (is it a ROUTER?)");
      this.socket = undefined;
      this.retry = setTimeout(() => this.dial(), this.reconnectMs);
    });
  }

  private read(socket: Socket): void {
    if (this.stage === "greeting") {
      const g = this.reader.take(GREETING_BYTES);
      if (!g) return;
      const wrong = checkGreeting(g);
      if (wrong) throw new Error(wrong);
      this.stage = "handshake";
    }
    for (;;) {
      if (socket.destroyed || this.socket !== socket) return;
      // the peer is the sidecar named by an owner-only connection file: its replies are not bounded
      const frame = this.reader.frame(constants.MAX_LENGTH, MAX_COMMAND_BYTES);
      if (!frame) return;
      if (frame.flags & COMMAND) {
        this.onCommand(socket, frame.body);
        continue;
      }
      if (this.stage !== "ready") throw new Error("a message before the READY handshake");
      this.parts.push(frame.body);
      if (frame.flags & MORE) continue;
      const frames = this.parts;
      this.parts = [];
      try {
        this.opts.onMessage(frames);
      } catch {
        // a failing handler loses its message, not the connection
      }
    }
  }

  private onCommand(socket: Socket, body: Buffer): void {
    const cmd = parseCommand(body);
    if (!cmd) throw new Error("a malformed command frame");
    switch (cmd.name) {
      case "READY": {
        if (this.stage !== "handshake") throw new Error("a second READY");
        const type = parseProperties(cmd.data)?.get("socket-type")?.toString("latin1") ?? "";
        if (!PEER_TYPES.has(type))
          throw new Error(`socket type ${JSON.stringify(type)} cannot talk to a DEALER`);
        this.stage = "ready";
        const queued = this.queue;
        this.queue = [];
        for (const frames of queued) this.write(socket, frames);
        return;
      }
      case "PING":
        socket.write(command("PONG", cmd.data.subarray(2, 18)));
        return;
      case "ERROR":
        throw new Error(
          `the peer sent ERROR: ${cmd.data.subarray(1, 1 + (cmd.data[0] ?? 0)).toString("latin1")}`,
        );
      default:
        return;
    }
  }
}
