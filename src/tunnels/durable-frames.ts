/**
 * The frames of a durable stream (docs/tunnels.md, "Durable tunnels"): after the handshake line,
 * both ends of an SSH channel between the sidecar and the head-node relay send frames of one type
 * byte and a fixed header. Data is numbered by byte offset, not by frame, so a stream resumes at
 * any byte after the channel carrying it was cut.
 *
 *   D u32 len, payload   data
 *   K u32 conn, u32 hi, u32 lo
 *                        (control channel only) connection `conn` has received this many data
 *                        bytes in all. Acknowledgements travel on the control channel, which both
 *                        ends always read: on the data channel they would wait behind data the
 *                        other end stopped reading (its service is slow), while that service
 *                        waits for them to write (an echo deadlocks that way)
 *   E                    end of data from the sender (its side closed its write half)
 *   F                    the sender has received the other's E
 *   X                    abort: the sender's side was reset; close without waiting
 *   P / Q                ping / pong (control channel)
 *   S                    stop: the relay exits (control channel, sidecar to relay)
 */

export type Frame =
  | { t: "D"; data: Buffer }
  | { t: "K"; conn: number; off: number }
  | { t: "E" }
  | { t: "F" }
  | { t: "X" }
  | { t: "P" }
  | { t: "Q" }
  | { t: "S" };

/** The largest payload one D frame carries (a longer write is split). */
export const MAX_DATA_FRAME = 256 * 1024;

const SINGLE = new Set(["E", "F", "X", "P", "Q", "S"]);

export function dataHeader(n: number): Buffer {
  const h = Buffer.allocUnsafe(5);
  h[0] = 0x44;
  h.writeUInt32BE(n, 1);
  return h;
}

export function ackFrame(conn: number, off: number): Buffer {
  const b = Buffer.allocUnsafe(13);
  b[0] = 0x4b;
  b.writeUInt32BE(conn, 1);
  b.writeUInt32BE(Math.floor(off / 0x1_0000_0000), 5);
  b.writeUInt32BE(off >>> 0, 9);
  return b;
}

export function single(t: "E" | "F" | "X" | "P" | "Q" | "S"): Buffer {
  return Buffer.from(t, "latin1");
}

/**
 * Incremental parser. A D frame's payload is passed on as it arrives (one frame may span many
 * reads; nothing waits for its end), so a cut in the middle of a frame has delivered every byte
 * before the cut, and the byte offsets stay exact.
 */
export class FrameReader {
  private head: Buffer = Buffer.alloc(0);
  /** payload bytes still to come of the current D frame */
  private dataLeft = 0;

  push(chunk: Buffer, on: (f: Frame) => void): void {
    let buf = chunk;
    while (buf.length > 0) {
      if (this.dataLeft > 0) {
        const n = Math.min(this.dataLeft, buf.length);
        this.dataLeft -= n;
        on({ t: "D", data: buf.subarray(0, n) });
        buf = buf.subarray(n);
        continue;
      }
      const b = this.head.length > 0 ? Buffer.concat([this.head, buf]) : buf;
      const type = String.fromCharCode(b[0]!);
      const need = type === "D" ? 5 : type === "K" ? 13 : SINGLE.has(type) ? 1 : -1;
      if (need < 0) throw new Error(`unknown frame type 0x${b[0]!.toString(16)}`);
      if (b.length < need) {
        this.head = Buffer.from(b);
        return;
      }
      this.head = Buffer.alloc(0);
      if (type === "D") {
        const n = b.readUInt32BE(1);
        if (n === 0 || n > MAX_DATA_FRAME)
          throw new Error(`data frame of ${n} bytes (at most ${MAX_DATA_FRAME})`);
        this.dataLeft = n;
      } else if (type === "K") {
        on({
          t: "K",
          conn: b.readUInt32BE(1),
          off: b.readUInt32BE(5) * 0x1_0000_0000 + b.readUInt32BE(9),
        });
      } else {
        on({ t: type as "E" });
      }
      buf = b.subarray(need);
    }
  }

  /** Drop a partial frame (the channel it came on is gone). */
  reset(): void {
    this.head = Buffer.alloc(0);
    this.dataLeft = 0;
  }
}
