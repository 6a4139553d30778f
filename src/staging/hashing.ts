/** Digests computed while data streams through, and S3's multipart ETag rule. */
import { createHash, type Hash } from "node:crypto";
import { type Readable, Transform, type TransformCallback } from "node:stream";
import type { DigestAlgo, Digests } from "./store.js";

/** A pass-through that hashes (SHA-256 always, MD5 when asked) and counts what flows. */
export class HashingStream extends Transform {
  private readonly sha = createHash("sha256");
  private readonly md5: Hash | undefined;
  bytes = 0;
  private result: Digests | undefined;

  constructor(opts: { md5?: boolean; onBytes?: (n: number) => void } = {}) {
    super({ highWaterMark: 1 << 20 });
    this.md5 = opts.md5 ? createHash("md5") : undefined;
    this.onBytes = opts.onBytes;
  }

  private readonly onBytes: ((n: number) => void) | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.sha.update(chunk);
    this.md5?.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.result = {
      sha256: this.sha.digest("hex"),
      ...(this.md5 ? { md5: this.md5.digest("hex") } : {}),
    };
    cb();
  }

  /** why the stream given to `hashFrom` failed, if it did */
  sourceError: unknown;

  /**
   * Hash what `source` yields. A consumer may prepare (mkdir, a pool's spawn, the previous tar
   * entry) before it reads: a source failing then must fail that consumer through
   * `sourceError`, not end the process as an unhandled 'error' on this stream.
   */
  hashFrom(source: Readable): void {
    source.on("error", (err) => {
      this.sourceError ??= err;
      this.destroy(err);
    });
    this.on("error", () => undefined);
    source.pipe(this);
  }

  /** available once the stream has ended */
  digests(): Digests {
    if (!this.result) throw new Error("digests() before the stream ended");
    return this.result;
  }
}

/** Digest of a buffer. */
export function digestOf(data: Buffer, algo: DigestAlgo): string {
  return createHash(algo).update(data).digest("hex");
}

/** The part size S3 uploads of `size` bytes use here (deterministic, so ETags can be recomputed). */
export function s3PartSize(size: number): number {
  const min = 8 * 1024 * 1024;
  // at most 10,000 parts; round up to whole MiB
  const need = Math.ceil(size / 10_000 / (1024 * 1024)) * 1024 * 1024;
  return Math.max(min, need);
}

/** S3's ETag of data uploaded with `partSize` parts: md5, or md5(concat(part md5s))-N. */
export class S3EtagHasher {
  private part = createHash("md5");
  private inPart = 0;
  private readonly parts: Buffer[] = [];
  private whole = createHash("md5");
  private total = 0;

  constructor(private readonly partSize: number) {}

  update(chunk: Buffer): void {
    this.whole.update(chunk);
    this.total += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      const take = Math.min(chunk.length - off, this.partSize - this.inPart);
      this.part.update(chunk.subarray(off, off + take));
      this.inPart += take;
      off += take;
      if (this.inPart === this.partSize) {
        this.parts.push(this.part.digest());
        this.part = createHash("md5");
        this.inPart = 0;
      }
    }
  }

  digest(): string {
    if (this.total <= this.partSize) return this.whole.digest("hex");
    if (this.inPart > 0) this.parts.push(this.part.digest());
    return `${createHash("md5").update(Buffer.concat(this.parts)).digest("hex")}-${this.parts.length}`;
  }
}

/**
 * Whether two digest sets agree on every checksum both have; `undefined` when they share none.
 * Equal S3 ETags mean equal content, but different ones do not mean different content (the
 * ETag depends on how the object was uploaded), so an ETag only ever confirms.
 */
export function digestsAgree(a: Digests, b: Digests): boolean | undefined {
  let shared = false;
  for (const k of ["sha256", "md5", "crc32c"] as const) {
    const x = a[k];
    const y = b[k];
    if (x !== undefined && y !== undefined) {
      shared = true;
      if (k === "crc32c" ? x !== y : x.toLowerCase() !== y.toLowerCase()) return false;
    }
  }
  if (shared) return true;
  return a.etag !== undefined && a.etag === b.etag ? true : undefined;
}
