/**
 * A child `ssh` (a session or a `-W` connection through the master) as a Duplex: writing is its
 * stdin, reading its stdout. The master reads and writes these pipes itself (the client hands
 * it the descriptors), so the data does not pass through the client process.
 */
import type { ChildProcess } from "node:child_process";
import { Duplex, PassThrough, type Readable } from "node:stream";

export class ChildChannel extends Duplex {
  readonly stderr: Readable;
  private done = false;
  private readEnded = false;

  constructor(readonly child: ChildProcess) {
    // `close` is emitted here, after `exit`, once the process and its pipes are done
    super({ allowHalfOpen: true, autoDestroy: false, emitClose: false });
    this.stderr = new PassThrough();
    const out = child.stdout!;
    out.on("data", (b: Buffer) => {
      if (!this.push(b)) out.pause();
    });
    out.on("end", () => this.endReadable());
    child.stdin?.on("error", () => undefined); // EPIPE once the remote side is gone
    child.on("close", (code, signal) => this.finish(code, signal));
  }

  override _read(): void {
    this.child.stdout!.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const stdin = this.child.stdin;
    if (!stdin || stdin.destroyed || !stdin.writable) return cb();
    if (stdin.write(chunk)) cb();
    else stdin.once("drain", () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.child.stdin?.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.close();
    cb(err);
  }

  /** stop this side (the remote command may go on) */
  close(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
  }

  private endReadable(): void {
    if (this.readEnded) return;
    this.readEnded = true;
    this.push(null);
  }

  /** the process and its pipes are done: subclasses report how it ended first */
  protected finish(_code: number | null, _signal: NodeJS.Signals | null): void {
    if (this.done) return;
    this.done = true;
    this.endReadable();
    const err = this.stderr as PassThrough;
    if (!err.writableEnded) err.end();
    this.emit("close");
  }
}
