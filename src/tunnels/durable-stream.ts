/**
 * One connection through a durable tunnel, as the sidecar sees it: a Duplex that outlives the SSH
 * channels carrying it. Bytes written are kept until the relay acknowledges them; when the
 * channel is cut, the stream waits (up to `resumeMs`) for the relay to come back on a new one,
 * then both ends resend what the other did not receive. The local socket it is spliced with
 * (the interchange, for Parsl) never sees the cut.
 */
import { Socket } from "node:net";
import { Duplex } from "node:stream";
import { dataHeader, FrameReader, MAX_DATA_FRAME, single, type Frame } from "./durable-frames.js";
import { giveBack } from "./slabs.js";

/** Unacknowledged bytes after which writes wait (the local side is paused). */
const HIGH_WATER = 8 * 1024 * 1024;
/** Acknowledge after this many bytes, or ACK_DELAY_MS after the first unacknowledged one. */
const ACK_BYTES = 256 * 1024;
const ACK_DELAY_MS = 20;
/** Below this, a D frame's header and payload go to an SSH channel as one write (one packet). */
const JOIN_BELOW = 64 * 1024;

export class DurableStream extends Duplex {
  private ch: Duplex | undefined;
  private unbind: (() => void) | undefined;
  private readonly reader = new FrameReader();
  /** data bytes received from the relay */
  received = 0;
  private acked = 0;
  /** offset of queue[0]: what the relay has acknowledged */
  private base = 0;
  /** offset of the end of what was written here */
  private sent = 0;
  private readonly queue: Buffer[] = [];
  private held: (() => void) | undefined;
  private ending = false;
  private peerEnded = false;
  private peerGotEnd = false;
  private readPaused = false;
  private clean = false;
  private skip = 0;
  private ackTimer: NodeJS.Timeout | undefined;
  private expiry: NodeJS.Timeout | undefined;

  constructor(
    /** the relay's name for the connection */
    readonly key: string,
    private readonly resumeMs: number,
    private readonly onGone: (s: DurableStream, err: Error | null) => void,
    /** send an acknowledgement on the control channel; false when it is down */
    private readonly ackOut: (conn: number, off: number) => boolean,
  ) {
    super({ allowHalfOpen: true, autoDestroy: false });
  }

  /** bytes written here that the relay has not acknowledged yet */
  get unacked(): number {
    return this.sent - this.base;
  }

  /**
   * Carry the stream on `ch` from now on. `peerReceived` is how many data bytes the relay has
   * received (from the handshake); everything after it is sent again. `rest` is what followed
   * the handshake on the channel. `skip`: data bytes the old channel delivered after the
   * handshake's offset was given, which the relay sends again and are dropped here.
   */
  attach(ch: Duplex, peerReceived: number, rest?: Buffer, skip = 0): void {
    if (this.destroyed) {
      ch.destroy();
      return;
    }
    if (
      !Number.isSafeInteger(peerReceived) ||
      peerReceived < this.base ||
      peerReceived > this.sent
    ) {
      ch.end(single("X"));
      this.destroy(
        new Error(
          `cannot resume ${this.key}: the relay has ${peerReceived} bytes, this side keeps ${this.base} to ${this.sent}`,
        ),
      );
      return;
    }
    if (this.ch) this.release(this.ch);
    clearTimeout(this.expiry);
    this.expiry = undefined;
    this.trim(peerReceived);
    this.reader.reset();
    this.ch = ch;
    this.acked = this.received - skip; // the handshake told the relay
    this.skip = skip;
    const onData = (b: Buffer): void => {
      try {
        this.reader.push(b, (f) => this.onFrame(f));
      } catch (err) {
        this.destroy(new Error(`durable stream ${this.key}: ${(err as Error).message}`));
      }
    };
    const onGone = (): void => this.detach(ch);
    ch.on("data", onData);
    // the relay's end of the channel closed: an SSH channel only half-closes by itself
    ch.on("end", onGone);
    ch.on("close", onGone);
    ch.on("error", onGone);
    this.unbind = () => {
      ch.off("data", onData);
      ch.off("end", onGone);
      ch.off("close", onGone);
      ch.off("error", onGone);
    };
    for (const b of this.queue) this.sendData(ch, b);
    if (this.ending) ch.write(single("E"));
    if (this.peerEnded) ch.write(single("F"));
    if (this.readPaused) ch.pause();
    else ch.resume();
    if (rest && rest.length > 0) onData(rest);
  }

  private detach(ch: Duplex): void {
    if (this.ch !== ch) return;
    this.release(ch);
    if (!this.destroyed && this.expiry === undefined) {
      this.expiry = setTimeout(
        () =>
          this.destroy(
            new Error(`not resumed within ${Math.round(this.resumeMs / 1000)} s of the cut`),
          ),
        this.resumeMs,
      );
    }
  }

  private release(ch: Duplex): void {
    this.unbind?.();
    this.unbind = undefined;
    this.ch = undefined;
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    this.reader.reset();
    ch.destroy();
  }

  private onFrame(f: Frame): void {
    switch (f.t) {
      case "D": {
        let data = f.data;
        if (this.skip > 0) {
          const n = Math.min(this.skip, data.length);
          this.skip -= n;
          data = data.subarray(n);
          if (data.length === 0) return;
        }
        this.received += data.length;
        if (!this.push(data) && !this.readPaused) {
          this.readPaused = true;
          this.ch?.pause();
        }
        this.scheduleAck();
        return;
      }
      case "E":
        if (this.peerEnded) return;
        this.peerEnded = true;
        this.push(null);
        this.sendAck();
        this.ch?.write(single("F"));
        this.maybeDone();
        return;
      case "F":
        this.peerGotEnd = true;
        this.maybeDone();
        return;
      case "X":
        this.destroy();
        return;
      case "P":
        this.ch?.write(single("Q"));
        return;
      default:
        return;
    }
  }

  /** The relay acknowledged `off` bytes (a K frame on the control channel). */
  acknowledged(off: number): void {
    try {
      this.trim(off);
    } catch (err) {
      this.destroy(new Error(`durable stream ${this.key}: ${(err as Error).message}`));
    }
  }

  private trim(off: number): void {
    if (off > this.sent) throw new Error(`acknowledged ${off} bytes, only ${this.sent} were sent`);
    while (this.base < off && this.queue.length > 0) {
      const head = this.queue[0]!;
      const n = Math.min(head.length, off - this.base);
      if (n === head.length) {
        this.queue.shift();
        // the relay has these bytes, so no channel still holds them to write: the slab is free
        giveBack(head);
      } else this.queue[0] = head.subarray(n);
      this.base += n;
    }
    if (this.held && this.unacked < HIGH_WATER) {
      const cb = this.held;
      this.held = undefined;
      cb();
    }
  }

  private sendData(ch: Duplex, b: Buffer): void {
    for (let i = 0; i < b.length; i += MAX_DATA_FRAME) {
      const part = b.subarray(i, i + MAX_DATA_FRAME);
      if (ch instanceof Socket) {
        // one writev of header and payload, without copying them into one buffer first
        ch.cork();
        ch.write(dataHeader(part.length));
        ch.write(part);
        ch.uncork();
      } else if (part.length < JOIN_BELOW) ch.write(Buffer.concat([dataHeader(part.length), part]));
      else {
        ch.write(dataHeader(part.length));
        ch.write(part);
      }
    }
  }

  private scheduleAck(): void {
    if (this.received - this.acked >= ACK_BYTES) this.sendAck();
    else
      this.ackTimer ??= setTimeout(() => {
        this.ackTimer = undefined;
        this.sendAck();
      }, ACK_DELAY_MS);
  }

  private sendAck(): void {
    if (!this.ch || this.received === this.acked) return;
    if (this.ackOut(Number(this.key), this.received)) this.acked = this.received;
    // the control channel is down: try again soon (a relay waiting at its limit sends no more
    // data, so no later data would bring this acknowledgement out)
    else
      this.ackTimer ??= setTimeout(() => {
        this.ackTimer = undefined;
        this.sendAck();
      }, 200);
  }

  private maybeDone(): void {
    if (this.ending && this.peerEnded && this.peerGotEnd && !this.clean) {
      this.clean = true;
      setImmediate(() => this.destroy());
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.queue.push(chunk);
    this.sent += chunk.length;
    if (this.ch) this.sendData(this.ch, chunk);
    if (this.unacked >= HIGH_WATER) this.held = cb;
    else cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.ending = true;
    this.ch?.write(single("E"));
    cb();
    this.maybeDone();
  }

  override _read(): void {
    if (!this.readPaused) return;
    this.readPaused = false;
    this.ch?.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    clearTimeout(this.expiry);
    clearTimeout(this.ackTimer);
    const ch = this.ch;
    if (ch) {
      this.unbind?.();
      this.unbind = undefined;
      this.ch = undefined;
      ch.end(this.clean ? undefined : single("X"));
    }
    this.held = undefined;
    this.onGone(this, err);
    cb(err);
  }
}
