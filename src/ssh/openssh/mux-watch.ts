/**
 * A connection held open to a ControlMaster's socket (OpenSSH's mux protocol, PROTOCOL.mux):
 * hello, one alive check for the master's pid, then idle. The master closes it when it exits,
 * so its end is the master's end, at once (a dead network ends the master through
 * ServerAlive). While it is open the master counts a client, so a ControlPersist timeout does
 * not end a master the link still uses.
 */
import { EventEmitter } from "node:events";
import { connect, type Socket } from "node:net";
import { SidecarError } from "../../errors.js";

const MSG_HELLO = 0x00000001;
const C_ALIVE_CHECK = 0x10000004;
const S_ALIVE = 0x80000005;
const MUX_VERSION = 4;

function packet(...words: number[]): Buffer {
  const b = Buffer.alloc(4 + 4 * words.length);
  b.writeUInt32BE(4 * words.length, 0);
  for (const [i, w] of words.entries()) b.writeUInt32BE(w >>> 0, 4 + 4 * i);
  return b;
}

/** Events: `closed` once the master ended the connection (or close() was called). */
export class MuxWatch extends EventEmitter {
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    readonly pid: number,
  ) {
    super();
    socket.on("close", () => this.end());
    socket.on("error", () => this.end());
    // nothing more is expected; reading keeps the socket's end noticed
    socket.on("data", () => undefined);
  }

  /** Connect to the master at `path`; resolves with its pid, rejects when none answers. */
  static open(path: string, timeoutMs: number): Promise<MuxWatch> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      let buf = Buffer.alloc(0);
      let hello = false;
      const fail = (why: string, cause?: unknown): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(
          new SidecarError("SSH_CONNECT", `No ControlMaster answers at ${path}: ${why}`, {
            cause,
            data: { controlPath: path },
          }),
        );
      };
      const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
      socket.on("error", (err) => fail(err.message, err));
      socket.on("close", () => fail("it closed the connection"));
      socket.on("connect", () =>
        socket.write(Buffer.concat([packet(MSG_HELLO, MUX_VERSION), packet(C_ALIVE_CHECK, 1)])),
      );
      socket.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
          const len = buf.readUInt32BE(0);
          const msg = buf.subarray(4, 4 + len);
          buf = buf.subarray(4 + len);
          const type = msg.length >= 4 ? msg.readUInt32BE(0) : -1;
          if (!hello) {
            if (type !== MSG_HELLO) return fail(`not an OpenSSH mux socket (message ${type})`);
            hello = true;
          } else if (type === S_ALIVE && msg.length >= 12) {
            clearTimeout(timer);
            socket.removeAllListeners();
            return resolve(new MuxWatch(socket, msg.readUInt32BE(8)));
          } else return fail(`unexpected reply ${type} to an alive check`);
        }
      });
    });
  }

  private end(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.emit("closed");
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  close(): void {
    this.end();
  }
}
