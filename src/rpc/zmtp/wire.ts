/**
 * ZMTP 3.1 on the wire (https://rfc.zeromq.org/spec/37/), the parts a ROUTER with the NULL
 * mechanism needs: the 64-byte greeting, commands (READY, PING/PONG, ERROR) with their metadata
 * properties, and frames. Pure functions and one byte reader; no sockets here.
 */

/** Frame flags (the first byte of every frame). */
export const MORE = 0x01;
export const LONG = 0x02;
export const COMMAND = 0x04;

export const GREETING_BYTES = 64;
/** Bytes of a frame header: flags and a 1-byte size, or flags and an 8-byte size. */
const SHORT_HEADER = 2;
const LONG_HEADER = 9;

/** Our greeting: signature, version 3.1, the NULL mechanism, not as-server, filler. */
export function greeting(): Buffer {
  const g = Buffer.alloc(GREETING_BYTES);
  g[0] = 0xff;
  // libzmq writes (routing-id size + 1) here for ZMTP 1.0 peers; a 3.x peer reads only the last bit
  g.writeBigUInt64BE(1n, 1);
  g[9] = 0x7f;
  g[10] = 3;
  g[11] = 1;
  g.write("NULL", 12, "latin1");
  return g;
}

/** Checks a peer's greeting: what is wrong with it, or undefined when we can talk. */
export function checkGreeting(g: Buffer): string | undefined {
  if (g[0] !== 0xff || (g[9]! & 0x01) === 0)
    return "not a ZMTP 3 greeting (a ZMTP 1.0 peer or not ZeroMQ at all)";
  if (g[10]! < 3)
    return `ZMTP version ${g[10]}.${g[11]} (this sidecar speaks 3.x; libzmq 4 or newer does)`;
  const mechanism = g.subarray(12, 32).toString("latin1").replace(/\0+$/, "");
  if (mechanism !== "NULL")
    return `security mechanism ${JSON.stringify(mechanism)} (this sidecar takes NULL: its messages are signed instead)`;
  return undefined;
}

/** One frame's header: the flags and the size in the shortest form. */
export function frameHeader(flags: number, size: number): Buffer {
  if (size <= 0xff) return Buffer.from([flags, size]);
  const h = Buffer.allocUnsafe(LONG_HEADER);
  h[0] = flags | LONG;
  h.writeBigUInt64BE(BigInt(size), 1);
  return h;
}

/** The encoded size of `parts` sent as one message. */
export function messageBytes(parts: readonly Buffer[]): number {
  let n = 0;
  for (const p of parts) n += (p.length <= 0xff ? SHORT_HEADER : LONG_HEADER) + p.length;
  return n;
}

/** `parts` (one message) encoded into one new buffer. */
export function encodeMessage(parts: readonly Buffer[]): Buffer {
  const out = Buffer.allocUnsafe(messageBytes(parts));
  let at = 0;
  const last = parts.length - 1;
  for (let i = 0; i <= last; i++) {
    const p = parts[i]!;
    const more = i < last ? MORE : 0;
    if (p.length <= 0xff) {
      out[at++] = more;
      out[at++] = p.length;
    } else {
      out[at++] = more | LONG;
      out.writeBigUInt64BE(BigInt(p.length), at);
      at += 8;
    }
    at += p.copy(out, at);
  }
  return out;
}

/** A command frame: name and body. */
export function command(name: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const data = Buffer.concat([Buffer.from([name.length]), Buffer.from(name, "latin1"), body]);
  return Buffer.concat([frameHeader(COMMAND, data.length), data]);
}

/** READY's metadata: `name-size name value-size(4) value` per property. */
export function properties(props: Record<string, Buffer | string>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(props)) {
    const v = typeof value === "string" ? Buffer.from(value, "latin1") : value;
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(v.length);
    parts.push(Buffer.from([name.length]), Buffer.from(name, "latin1"), len, v);
  }
  return Buffer.concat(parts);
}

/** A command frame's body split into its name and data; undefined when malformed. */
export function parseCommand(body: Buffer): { name: string; data: Buffer } | undefined {
  if (body.length < 1 || body.length < 1 + body[0]!) return undefined;
  return {
    name: body.subarray(1, 1 + body[0]!).toString("latin1"),
    data: body.subarray(1 + body[0]!),
  };
}

/** READY's properties (names lower-cased: ZMTP compares them without case); undefined when malformed. */
export function parseProperties(data: Buffer): Map<string, Buffer> | undefined {
  const props = new Map<string, Buffer>();
  let at = 0;
  while (at < data.length) {
    const nameLen = data[at]!;
    if (at + 1 + nameLen + 4 > data.length) return undefined;
    const name = data
      .subarray(at + 1, at + 1 + nameLen)
      .toString("latin1")
      .toLowerCase();
    at += 1 + nameLen;
    const valueLen = data.readUInt32BE(at);
    at += 4;
    if (at + valueLen > data.length) return undefined;
    props.set(name, data.subarray(at, at + valueLen));
    at += valueLen;
  }
  return props;
}

/** A frame whose header announces more bytes than the reader was told to take. */
export class FrameTooLarge extends RangeError {
  constructor(
    readonly size: bigint,
    readonly limit: number,
    readonly command: boolean,
  ) {
    super(`a ${command ? "command " : ""}frame of ${size} bytes is over the limit of ${limit}`);
  }
}

/** A frame read off the wire. */
export interface Frame {
  flags: number;
  body: Buffer;
}

/**
 * Bytes as they arrive, read back as greeting and frames. Chunks are joined only when a read
 * needs bytes from more than one (once per such read, whatever the frame's size).
 */
export class ByteReader {
  private head: Buffer = Buffer.alloc(0);
  private tail: Buffer[] = [];
  private tailBytes = 0;

  push(chunk: Buffer): void {
    if (this.head.length === 0 && this.tail.length === 0) this.head = chunk;
    else {
      this.tail.push(chunk);
      this.tailBytes += chunk.length;
    }
  }

  /** Bytes that have arrived and not been taken yet. */
  get buffered(): number {
    return this.head.length + this.tailBytes;
  }

  /** The next byte without taking it, or undefined when none has arrived. */
  peek(): number | undefined {
    return this.head.length > 0 ? this.head[0] : this.tail[0]?.[0];
  }

  /** The next `n` bytes, or undefined until that many have arrived. */
  take(n: number): Buffer | undefined {
    if (!this.contiguous(n)) return undefined;
    const out = this.head.subarray(0, n);
    this.head = this.head.subarray(n);
    return out;
  }

  /**
   * The next frame, or undefined until all of it has arrived. Throws FrameTooLarge for a size
   * over `maxBytes` (`maxCommandBytes` for a command), judged from the header before the body is
   * waited for, and RangeError for flags with reserved bits set.
   */
  frame(maxBytes: number, maxCommandBytes = maxBytes): Frame | undefined {
    if (!this.contiguous(SHORT_HEADER)) return undefined;
    const flags = this.head[0]!;
    if (flags & ~(MORE | LONG | COMMAND))
      throw new RangeError(`frame flags 0x${flags.toString(16)} have reserved bits set`);
    const isCommand = (flags & COMMAND) !== 0;
    const limit = isCommand ? maxCommandBytes : maxBytes;
    let size: number;
    let header = SHORT_HEADER;
    if (flags & LONG) {
      if (!this.contiguous(LONG_HEADER)) return undefined;
      const big = this.head.readBigUInt64BE(1);
      if (big > BigInt(limit)) throw new FrameTooLarge(big, limit, isCommand);
      size = Number(big);
      header = LONG_HEADER;
    } else size = this.head[1]!;
    if (size > limit) throw new FrameTooLarge(BigInt(size), limit, isCommand);
    if (!this.contiguous(header + size)) return undefined;
    const body = this.head.subarray(header, header + size);
    this.head = this.head.subarray(header + size);
    return { flags, body };
  }

  /** Makes the first `n` bytes one buffer; false when fewer have arrived. */
  private contiguous(n: number): boolean {
    if (this.head.length >= n) return true;
    if (this.head.length + this.tailBytes < n) return false;
    this.head = Buffer.concat([this.head, ...this.tail]);
    this.tail = [];
    this.tailBytes = 0;
    return true;
  }
}
