import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Storage } from "@google-cloud/storage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAllAfterAll } from "./hooks.js";
import { alive } from "./procs.js";
import { makeTempDir } from "./registry.js";
import { startGcs, type GcsServer } from "./gcs.js";

stopAllAfterAll();
const md5b64 = (b: Buffer) => createHash("md5").update(b).digest("base64");

for (const backend of ["memory", "filesystem"] as const) {
  describe(`startGcs (fake-gcs-server, ${backend})`, () => {
    let gcs: GcsServer;
    let storage: Storage;
    const bucketName = "testbed-bucket";
    beforeAll(async () => {
      gcs = await startGcs({ backend });
      // No credentials: a custom apiEndpoint skips auth unless useAuthWithCustomEndpoint is set.
      storage = new Storage({
        apiEndpoint: gcs.apiEndpoint,
        projectId: gcs.projectId,
        useAuthWithCustomEndpoint: false,
      });
      await storage.createBucket(bucketName);
    }, 30000);
    afterAll(async () => {
      const pid = gcs?.pid;
      await gcs?.stop();
      if (pid) expect(alive(pid)).toBe(false);
    }, 20000);

    it("simple and resumable uploads, download, metadata (md5Hash, crc32c)", {
      timeout: 30000,
    }, async () => {
      const bucket = storage.bucket(bucketName);
      const body = randomBytes(300_000);
      await bucket.file("simple.bin").save(body, { resumable: false });
      await bucket.file("resumable.bin").save(body, { resumable: true });
      const dir = makeTempDir("gcs-client");
      const src = join(dir, "upload.bin");
      writeFileSync(src, body);
      await bucket.upload(src, { destination: "from-file.bin", resumable: true });
      for (const name of ["simple.bin", "resumable.bin", "from-file.bin"]) {
        const [data] = await bucket.file(name).download();
        expect(md5b64(data)).toBe(md5b64(body));
        const [meta] = await bucket.file(name).getMetadata();
        expect(meta.md5Hash).toBe(md5b64(body));
        expect(meta.crc32c).toMatch(/^[A-Za-z0-9+/]{6}==$/);
        expect(Number(meta.size)).toBe(body.length);
      }
    });

    it("lists with a prefix", { timeout: 30000 }, async () => {
      const bucket = storage.bucket(bucketName);
      await Promise.all(
        [0, 1, 2].map((i) => bucket.file(`list/${i}`).save(`${i}`, { resumable: false })),
      );
      const [files] = await bucket.getFiles({ prefix: "list/" });
      expect(files.map((f) => f.name).sort()).toEqual(["list/0", "list/1", "list/2"]);
      const [buckets] = await storage.getBuckets();
      expect(buckets.map((b) => b.name)).toContain(bucketName);
    });
  });
}
