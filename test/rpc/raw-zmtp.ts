/**
 * A ZMTP 3 peer written byte by byte over node:net, for sending what no ZeroMQ library would
 * (a hostile local program). Its bytes are spelled out here rather than taken from
 * src/rpc/zmtp/wire.ts, so that a mistake there cannot hide in both ends.
 */
import { connect, type Socket } from "node:net";

/** Greeting: signature, version 3.0, mechanism NULL, not as-server, zero filler (RFC 23/37). */
export function rawGreeting(): Buffer {
  const g = Buffer.alloc(64);
  g[0] = 0xff;
  g[9] = 0x7f;
  g[10] = 3;
  g[11] = 0;
  g.write("NULL", 12, "latin1");
  return g;
}

/** READY with a Socket-Type property: a command frame (flags 0x04, a 1-byte size). */
export function rawReady(socketType = "DEALER"): Buffer {
  const name = Buffer.from("Socket-Type", "latin1");
  const value = Buffer.from(socketType, "latin1");
  const len = Buffer.alloc(4);
  len.writeUInt32BE(value.length);
  const body = Buffer.concat([
    Buffer.from([5]),
    Buffer.from("READY"),
    Buffer.from([name.length]),
    name,
    len,
    value,
  ]);
  return Buffer.concat([Buffer.from([0x04, body.length]), body]);
}

/** A message frame's header: flags (0x01 more, 0x02 long) and its size. */
export function rawFrameHeader(size: number, more: boolean): Buffer {
  if (size <= 0xff) return Buffer.from([more ? 0x01 : 0x00, size]);
  const h = Buffer.alloc(9);
  h[0] = (more ? 0x01 : 0x00) | 0x02;
  h.writeBigUInt64BE(BigInt(size), 1);
  return h;
}

/** One message of `frames` (each frame but the last marked "more"). */
export function rawMessage(frames: Buffer[]): Buffer {
  return Buffer.concat(
    frames.flatMap((f, i) => [rawFrameHeader(f.length, i < frames.length - 1), f]),
  );
}

/** Where to connect: `ipc://PATH` or `tcp://HOST:PORT`. */
function dial(endpoint: string): Socket {
  if (endpoint.startsWith("ipc://")) return connect(endpoint.slice(6));
  const m = /^tcp:\/\/(.+):(\d+)$/.exec(endpoint);
  if (!m) throw new Error(`cannot dial ${endpoint}`);
  return connect(Number(m[2]), m[1]!.replace(/^\[(.*)\]$/, "$1"));
}

/** A raw connection that has sent its greeting and READY (a DEALER, as far as the router knows). */
export class RawPeer {
  closed = false;
  readonly whenClosed: Promise<void>;
  private constructor(readonly socket: Socket) {
    socket.on("error", () => undefined);
    socket.on("data", () => undefined); // read (and ignore) the router's greeting and READY
    this.whenClosed = new Promise((resolve) =>
      socket.once("close", () => {
        this.closed = true;
        resolve();
      }),
    );
  }

  static async connect(endpoint: string, handshake = true): Promise<RawPeer> {
    const socket = dial(endpoint);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const peer = new RawPeer(socket);
    if (handshake) await peer.write(Buffer.concat([rawGreeting(), rawReady()]));
    return peer;
  }

  /** Writes `bytes`; resolves once the kernel took them (or the connection closed). */
  write(bytes: Buffer): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      if (this.socket.write(bytes)) return resolve();
      const done = (): void => {
        this.socket.off("drain", done);
        this.socket.off("close", done);
        resolve();
      };
      this.socket.once("drain", done);
      this.socket.once("close", done);
    });
  }

  /**
   * Sends frames of `frameBytes` marked "more" (a message that never ends) until `totalBytes`
   * went out or the router hung up; returns the bytes written.
   */
  async flood(
    frameBytes: number,
    totalBytes: number,
    body = Buffer.alloc(frameBytes),
  ): Promise<number> {
    const header = rawFrameHeader(frameBytes, true);
    let sent = 0;
    while (sent < totalBytes && !this.closed) {
      await this.write(header);
      await this.write(body);
      sent += frameBytes;
    }
    return sent;
  }

  /** Whether the router closed it within `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((r) => {
      timer = setTimeout(() => r(false), ms);
    });
    const res = await Promise.race([this.whenClosed.then(() => true as const), late]);
    clearTimeout(timer);
    return res;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
