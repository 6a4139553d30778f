/** Pulls exact byte counts out of a stream of chunks, and hands out bounded sub-streams. */
import type { Readable } from "node:stream";

export class ByteReader {
  private readonly it: AsyncIterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;

  constructor(source: Readable | AsyncIterable<Buffer>) {
    this.it = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const { value, done } = await this.it.next();
    if (done) {
      this.ended = true;
      return false;
    }
    this.buf = this.buf.length === 0 ? value : Buffer.concat([this.buf, value]);
    return true;
  }

  /** exactly n bytes, or fewer at the end of the stream */
  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n && (await this.fill()));
    const out = this.buf.subarray(0, Math.min(n, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    return out;
  }

  /** up to `max` bytes (at least one unless the stream ended) */
  async readSome(max: number): Promise<Buffer> {
    if (this.buf.length === 0 && !(await this.fill())) return Buffer.alloc(0);
    const out = this.buf.subarray(0, Math.min(max, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    return out;
  }

  /** n bytes as chunks; throws if the stream ends first */
  async *chunks(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.fill()))
        throw new Error(`the tar stream ended ${left} bytes early`);
      const take = this.buf.subarray(0, Math.min(left, this.buf.length));
      this.buf = this.buf.subarray(take.length);
      left -= take.length;
      yield take;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.chunks(n));
  }

  /** Stop reading: lets the source's iterator clean up. */
  async close(): Promise<void> {
    await this.it.return?.();
  }
}
