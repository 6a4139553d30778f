/**
 * Writes files into a tar stream on a Writable, honouring backpressure. Small pieces (headers,
 * small files, padding) are gathered into writes of up to 256 KiB: one SSH packet per 4 KiB file
 * would cost more than the file.
 */
import { createHash } from "node:crypto";
import type { Readable, Writable } from "node:stream";
import { SidecarError } from "../../errors.js";
import { encodeHeader, padding } from "./header.js";

const ZEROS = Buffer.alloc(1024);
const BATCH = 256 * 1024;

export class TarEncoder {
  private failed: Error | undefined;
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** resolves at the next 'drain' while the destination pushes back */
  private draining: Promise<void> | undefined;
  private readonly sha = createHash("sha256");
  /** bytes of archive written so far */
  written = 0;

  private closed = false;

  constructor(private readonly out: Writable) {
    out.on("error", (err: Error) => {
      this.failed ??= err;
    });
    out.once("close", () => {
      this.closed = true;
    });
  }

  /** Write now; the promise (shared by every caller meanwhile) is the destination's drain. */
  private write(chunk: Buffer): Promise<void> | undefined {
    if (this.failed) throw this.failed;
    if (this.closed) throw new Error("the tar destination closed");
    this.sha.update(chunk);
    this.written += chunk.length;
    if (this.out.write(chunk) && !this.draining) return undefined;
    this.draining ??= new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        this.out.off("close", onClose);
        this.draining = undefined;
        resolve();
      };
      const onClose = (): void => {
        this.out.off("drain", onDrain);
        this.draining = undefined;
        reject(this.failed ?? new Error("the tar destination closed"));
      };
      this.out.once("drain", onDrain);
      this.out.once("close", onClose);
    });
    return this.draining;
  }

  /** Queue bytes; written once BATCH bytes are held. */
  private push(chunk: Buffer): Promise<void> | undefined {
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    return this.heldBytes >= BATCH ? this.flush() : this.draining;
  }

  private flush(): Promise<void> | undefined {
    if (this.heldBytes === 0) return this.draining;
    const data = this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held, this.heldBytes);
    this.held = [];
    this.heldBytes = 0;
    return this.write(data);
  }

  async addDirectory(name: string, mtime?: number): Promise<void> {
    await this.push(
      encodeHeader({ name, type: "directory", size: 0, mtime: mtime ?? Date.now() / 1000 }),
    );
  }

  /** Add a small file held whole; returns a promise only when the destination pushes back. */
  addBuffer(name: string, data: Buffer, mtime?: number, mode?: number): Promise<void> | undefined {
    this.push(
      encodeHeader({
        name,
        type: "file",
        size: data.length,
        mtime: mtime ?? Date.now() / 1000,
        ...(mode === undefined ? {} : { mode: mode & 0o777 }),
      }),
    );
    if (data.length > 0) this.push(data);
    const p = padding(data.length);
    if (p > 0) this.push(ZEROS.subarray(0, p));
    // push flushed whenever a batch filled; a write that met backpressure left `draining`
    return this.draining;
  }

  /** Add a file; `data` must yield exactly `size` bytes. */
  async addFile(
    name: string,
    size: number,
    data: Readable | Buffer,
    mtime?: number,
    mode?: number,
  ): Promise<void> {
    if (Buffer.isBuffer(data) && data.length === size) {
      await this.addBuffer(name, data, mtime, mode);
      return;
    }
    await this.push(
      encodeHeader({
        name,
        type: "file",
        size,
        mtime: mtime ?? Date.now() / 1000,
        ...(mode === undefined ? {} : { mode: mode & 0o777 }),
      }),
    );
    let n = 0;
    if (Buffer.isBuffer(data)) n = data.length;
    else {
      await this.flush();
      for await (const chunk of data as AsyncIterable<Buffer>) {
        n += chunk.length;
        if (n > size) break;
        await this.write(chunk);
      }
    }
    if (n !== size)
      throw new SidecarError(
        "STAGING_INTEGRITY",
        `\`${name}\` changed while it was being sent: expected ${size} bytes, read ${n}`,
        { data: { entry: name } },
      );
    const p = padding(size);
    if (p > 0) await this.push(ZEROS.subarray(0, p));
  }

  /** End the archive (two zero blocks); returns the SHA-256 (hex) of every byte written. */
  async finishArchive(): Promise<string> {
    this.held.push(ZEROS);
    this.heldBytes += ZEROS.length;
    await this.flush();
    await this.draining;
    return this.sha.digest("hex");
  }

  /** End the output stream, after `trailer` if given (bytes outside the archive). */
  async close(trailer?: Buffer): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      if (this.failed) return reject(this.failed);
      if (trailer) this.out.write(trailer);
      this.out.end(() => resolve());
    });
  }

  async end(): Promise<void> {
    await this.finishArchive();
    await this.close();
  }
}
