import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAllAfterAll } from "./hooks.js";
import { alive } from "./procs.js";
import { startS3, type S3Server } from "./s3.js";

stopAllAfterAll();
// The SDK warns that releases after January 2027 need Node 22; a process warning is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
const md5 = (b: Buffer) => createHash("md5").update(b).digest("hex");

describe("startS3 (moto)", () => {
  let s3: S3Server;
  let client: S3Client;
  const Bucket = "testbed-bucket";
  beforeAll(async () => {
    s3 = await startS3();
    client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await client.send(new CreateBucketCommand({ Bucket }));
  }, 40000);
  afterAll(async () => {
    client?.destroy();
    const pid = s3?.pid;
    await s3?.stop();
    if (pid) expect(alive(pid)).toBe(false);
  }, 20000);

  it("PutObject (buffer and stream) / GetObject round trip", { timeout: 30000 }, async () => {
    const body = randomBytes(100_000);
    await client.send(new PutObjectCommand({ Bucket, Key: "a/buf.bin", Body: body }));
    await client.send(
      new PutObjectCommand({
        Bucket,
        Key: "a/stream.bin",
        Body: Readable.from([body]),
        ContentLength: body.length,
      }),
    );
    for (const Key of ["a/buf.bin", "a/stream.bin"]) {
      const got = await client.send(new GetObjectCommand({ Bucket, Key }));
      expect(md5(Buffer.from(await got.Body!.transformToByteArray()))).toBe(md5(body));
    }
  });

  it("multipart upload larger than 5 MiB", { timeout: 60000 }, async () => {
    const parts = [randomBytes(5 * 1024 * 1024), randomBytes(1024 * 1024 + 7)];
    const Key = "big/multi.bin";
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    const done = [];
    for (const [i, Body] of parts.entries()) {
      const { ETag } = await client.send(
        new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, Body }),
      );
      done.push({ ETag, PartNumber: i + 1 });
    }
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key,
        UploadId,
        MultipartUpload: { Parts: done },
      }),
    );
    const head = await client.send(new HeadObjectCommand({ Bucket, Key }));
    expect(head.ContentLength).toBe(parts[0]!.length + parts[1]!.length);
    expect(head.ETag).toMatch(/-2"$/);
    const got = await client.send(new GetObjectCommand({ Bucket, Key }));
    expect(md5(Buffer.from(await got.Body!.transformToByteArray()))).toBe(
      md5(Buffer.concat(parts)),
    );
  });

  it("ListObjectsV2 with prefix and pagination", { timeout: 30000 }, async () => {
    for (let i = 0; i < 5; i++)
      await client.send(new PutObjectCommand({ Bucket, Key: `list/${i}`, Body: `${i}` }));
    const first = await client.send(
      new ListObjectsV2Command({ Bucket, Prefix: "list/", MaxKeys: 3 }),
    );
    expect(first.Contents?.map((o) => o.Key)).toEqual(["list/0", "list/1", "list/2"]);
    expect(first.IsTruncated).toBe(true);
    const rest = await client.send(
      new ListObjectsV2Command({
        Bucket,
        Prefix: "list/",
        ContinuationToken: first.NextContinuationToken,
      }),
    );
    expect(rest.Contents?.map((o) => o.Key)).toEqual(["list/3", "list/4"]);
  });
});
