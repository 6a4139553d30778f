/** Writes files into a tar stream on a Writable, honouring backpressure. */
import type { Readable, Writable } from "node:stream";
import { SidecarError } from "../../errors.js";
import { encodeHeader, padding } from "./header.js";

const ZEROS = Buffer.alloc(1024);

export class TarEncoder {
  private failed: Error | undefined;

  constructor(private readonly out: Writable) {
    out.on("error", (err: Error) => {
      this.failed ??= err;
    });
  }

  private write(chunk: Buffer): Promise<void> | undefined {
    if (this.failed) throw this.failed;
    if (this.out.write(chunk)) return undefined;
    return new Promise((resolve, reject) => {
      const onDrain = (): void => {
        this.out.off("close", onClose);
        resolve();
      };
      const onClose = (): void => {
        this.out.off("drain", onDrain);
        reject(this.failed ?? new Error("the tar destination closed"));
      };
      this.out.once("drain", onDrain);
      this.out.once("close", onClose);
    });
  }

  async addDirectory(name: string, mtime?: number): Promise<void> {
    await this.write(encodeHeader({ name, type: "directory", size: 0, mtime: mtime ?? Date.now() / 1000 }));
  }

  /** Add a file; `data` must yield exactly `size` bytes. */
  async addFile(name: string, size: number, data: Readable | Buffer, mtime?: number, mode?: number): Promise<void> {
    await this.write(encodeHeader({ name, type: "file", size, mtime: mtime ?? Date.now() / 1000, ...(mode === undefined ? {} : { mode: mode & 0o777 }) }));
    let n = 0;
    if (Buffer.isBuffer(data)) {
      n = data.length;
      if (n > 0) await this.write(data);
    } else {
      for await (const chunk of data as AsyncIterable<Buffer>) {
        n += chunk.length;
        if (n > size) break;
        await this.write(chunk);
      }
    }
    if (n !== size) throw new SidecarError("STAGING_INTEGRITY", `\`${name}\` changed while it was being sent: expected ${size} bytes, read ${n}`, { data: { entry: name } });
    const p = padding(size);
    if (p > 0) await this.write(ZEROS.subarray(0, p));
  }

  async end(): Promise<void> {
    await this.write(ZEROS);
    await new Promise<void>((resolve, reject) => {
      if (this.failed) return reject(this.failed);
      this.out.end(() => resolve());
    });
  }
}
