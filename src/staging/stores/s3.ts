/**
 * S3 and S3-compatible stores with @aws-sdk/client-s3: the default credential chain (refreshed by
 * the SDK), multipart uploads with a Content-MD5 per part, and visibility only on completion.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { SidecarError } from "../../errors.js";
import { s3PartSize } from "../hashing.js";
import { forEachLimit } from "../retry.js";
import { safeRelative } from "../safe-path.js";
import type { Digests, PutOptions, StagedWrite, Store, StoreEntry } from "../store.js";

export interface S3StoreOptions {
  /** S3-compatible endpoint; default $PARSL_SIDECAR_S3_ENDPOINT, $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL */
  endpoint?: string | undefined;
  region?: string | undefined;
  /** static credentials (tests); otherwise the SDK's default chain */
  credentials?: S3ClientConfig["credentials"];
  /** parts uploaded at once per file @default 4 */
  partConcurrency?: number;
}

function stripQuotes(etag: string | undefined): string | undefined {
  return etag?.replace(/^"|"$/g, "");
}

function digestsFrom(etag: string | undefined, meta: Record<string, string> | undefined): Digests {
  const e = stripQuotes(etag);
  const d: Digests = {};
  if (e) {
    d.etag = e;
    if (/^[0-9a-f]{32}$/i.test(e)) d.md5 = e.toLowerCase();
  }
  if (meta?.sha256 && /^[0-9a-f]{64}$/i.test(meta.sha256)) d.sha256 = meta.sha256.toLowerCase();
  if (!d.md5 && meta?.md5 && /^[0-9a-f]{32}$/i.test(meta.md5)) d.md5 = meta.md5.toLowerCase();
  return d;
}

/** Collects a stream into parts of `size` bytes. */
async function* parts(data: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let held: Buffer[] = [];
  let n = 0;
  for await (const chunk of data) {
    let c = chunk;
    while (n + c.length >= size) {
      const take = size - n;
      held.push(c.subarray(0, take));
      yield Buffer.concat(held, size);
      held = [];
      n = 0;
      c = c.subarray(take);
    }
    if (c.length > 0) {
      held.push(c);
      n += c.length;
    }
  }
  if (n > 0 || held.length > 0) yield Buffer.concat(held, n);
}

export class S3Store implements Store {
  readonly kind = "s3" as const;
  readonly client: S3Client;

  constructor(
    readonly bucket: string,
    private readonly opts: S3StoreOptions = {},
  ) {
    // the SDK warns about Node 20 on every start; nothing a sidecar user can act on
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
    const endpoint =
      opts.endpoint ??
      process.env.PARSL_SIDECAR_S3_ENDPOINT ??
      process.env.AWS_ENDPOINT_URL_S3 ??
      process.env.AWS_ENDPOINT_URL;
    this.client = new S3Client({
      region:
        opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1",
      ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      maxAttempts: 3,
    });
  }

  url(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  private prefixOf(key: string): string {
    return key === "" || key.endsWith("/") ? key : `${key}/`;
  }

  async stat(key: string): Promise<StoreEntry | undefined> {
    if (key !== "" && !key.endsWith("/")) {
      try {
        const h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
        const entry: StoreEntry = {
          path: "",
          type: "file",
          size: h.ContentLength ?? 0,
          digests: digestsFrom(h.ETag, h.Metadata),
        };
        if (h.LastModified) entry.mtimeMs = h.LastModified.getTime();
        return entry;
      } catch (err) {
        const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
        if (e.name !== "NotFound" && e.name !== "NoSuchKey" && e.$metadata?.httpStatusCode !== 404)
          throw err;
      }
    }
    // a "directory": any key under key/ (this also reports a missing bucket as NoSuchBucket)
    const res = await this.client.send(
      new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefixOf(key), MaxKeys: 1 }),
    );
    return (res.KeyCount ?? 0) > 0 || key === ""
      ? { path: "", type: "directory", size: 0, digests: {} }
      : undefined;
  }

  async list(root: string): Promise<StoreEntry[]> {
    const prefix = this.prefixOf(root);
    const out: StoreEntry[] = [];
    let token: string | undefined;
    do {
      const res = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of res.Contents ?? []) {
        const rel = o.Key!.slice(prefix.length);
        if (rel === "") continue;
        if (rel.endsWith("/")) {
          out.push({
            path: safeRelative(rel, this.url(root)),
            type: "directory",
            size: 0,
            digests: {},
          });
          continue;
        }
        const entry: StoreEntry = {
          path: safeRelative(rel, this.url(root)),
          type: "file",
          size: o.Size ?? 0,
          digests: digestsFrom(o.ETag, undefined),
        };
        if (o.LastModified) entry.mtimeMs = o.LastModified.getTime();
        out.push(entry);
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async read(key: string, opts: { signal?: AbortSignal | undefined } = {}): Promise<Readable> {
    const res = await this.client.send(
      new GetObjectCommand({ Bucket: this.bucket, Key: key }),
      opts.signal ? { abortSignal: opts.signal } : {},
    );
    if (!res.Body)
      throw new SidecarError("STAGING_FAILED", `S3 returned no body for ${this.url(key)}`);
    return res.Body as Readable;
  }

  async put(key: string, data: Readable, opts: PutOptions = {}): Promise<StagedWrite> {
    const partSize = s3PartSize(opts.size ?? 0);
    const it = parts(data, partSize)[Symbol.asyncIterator]();
    const first = await it.next();
    const firstBuf = first.done ? Buffer.alloc(0) : first.value;
    const second = first.done ? first : await it.next();
    // multipart ETags are no checksum of the content: keep what is known as metadata
    const meta = (d: Digests): Record<string, string> | undefined =>
      d.sha256 ? { sha256: d.sha256 } : d.md5 ? { md5: d.md5 } : undefined;
    if (second.done) {
      const md5 = createHash("md5").update(firstBuf).digest();
      return {
        size: firstBuf.length,
        digests: { md5: md5.toString("hex"), etag: md5.toString("hex") },
        commit: async (d) => {
          await this.client.send(
            new PutObjectCommand({
              Bucket: this.bucket,
              Key: key,
              Body: firstBuf,
              ContentLength: firstBuf.length,
              ContentMD5: md5.toString("base64"),
              Metadata: meta({ ...opts.digests, ...d }),
            }),
            opts.signal ? { abortSignal: opts.signal } : {},
          );
        },
        abort: async () => undefined,
      };
    }
    const created = await this.client.send(
      new CreateMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        Metadata: meta(opts.digests ?? {}),
      }),
    );
    const uploadId = created.UploadId!;
    const abort = async (): Promise<void> => {
      await this.client
        .send(
          new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }),
        )
        .catch(() => undefined);
    };
    const done: Array<{ PartNumber: number; ETag: string; md5: Buffer }> = [];
    let size = 0;
    try {
      const all = (async function* () {
        yield firstBuf;
        yield second.value as Buffer;
        for (;;) {
          const n = await it.next();
          if (n.done) return;
          yield n.value;
        }
      })();
      let num = 0;
      const numbered = (async function* () {
        for await (const b of all) yield { num: ++num, body: b };
      })();
      await forEachLimit(numbered, this.opts.partConcurrency ?? 4, async ({ num: n, body }) => {
        const md5 = createHash("md5").update(body).digest();
        const r = await this.client.send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            PartNumber: n,
            Body: body,
            ContentLength: body.length,
            ContentMD5: md5.toString("base64"),
          }),
          opts.signal ? { abortSignal: opts.signal } : {},
        );
        size += body.length;
        done.push({ PartNumber: n, ETag: r.ETag!, md5 });
      });
    } catch (err) {
      await abort();
      throw err;
    }
    done.sort((a, b) => a.PartNumber - b.PartNumber);
    const etag = `${createHash("md5")
      .update(Buffer.concat(done.map((p) => p.md5)))
      .digest("hex")}-${done.length}`;
    return {
      size,
      digests: { etag },
      commit: async () => {
        const res = await this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            MultipartUpload: {
              Parts: done.map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag })),
            },
          }),
        );
        const got = stripQuotes(res.ETag);
        if (got && got !== etag)
          throw new SidecarError(
            "STAGING_INTEGRITY",
            `S3 reports ETag ${got} for ${this.url(key)}, expected ${etag}`,
          );
      },
      abort,
    };
  }

  async mkdir(): Promise<void> {
    // object stores have no directories
  }

  async remove(key: string): Promise<void> {
    if (key !== "" && !key.endsWith("/"))
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    const keys = (await this.list(key).catch(() => [])).map(
      (e) => `${this.prefixOf(key)}${e.path}${e.type === "directory" ? "/" : ""}`,
    );
    for (let i = 0; i < keys.length; i += 1000) {
      await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
        }),
      );
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
