// Real servers for the staging tests: an sshd reached through SshConnections as `pool`, moto (S3)
// and fake-gcs-server (GCS) with a bucket each, and helpers to seed and read every store.
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, relative } from "node:path";
import type { SshConnections } from "../../src/ssh/connections.js";
import { StagingService } from "../../src/staging/service.js";
import { GcsStore } from "../../src/staging/stores/gcs.js";
import { sshSetup } from "../ssh/helpers.js";
import { startGcs, type GcsServer } from "../testbed/gcs.js";
import { startS3, type S3Server } from "../testbed/s3.js";
import type { Sshd } from "../testbed/sshd.js";

export type Kind = "local" | "pool" | "s3" | "gcs";
export const KINDS: Kind[] = ["local", "pool", "s3", "gcs"];

export interface Bed {
  sshd: Sshd;
  pool: SshConnections;
  s3: S3Server;
  gcs: GcsServer;
  s3c: S3Client;
  gcsStore: GcsStore;
  service: StagingService;
  /** a scratch dir in a tmpfs (/dev/shm) */
  tmp: string;
  /** a URL for `rel` in a store of this kind (pool: ssh://pool/...) */
  url(kind: Kind, rel: string): string;
  seed(kind: Kind, rel: string, files: Record<string, Buffer>): Promise<void>;
  read(kind: Kind, rel: string): Promise<Record<string, Buffer>>;
  close(): Promise<void>;
}

export const BUCKET = "psc-stage";

export async function startBed(): Promise<Bed> {
  // Remote sessions get their own HOME: root's ~/.bashrc here runs `pyenv rehash`, whose global
  // lock file is left behind when a test kills connections mid-session, and then every later SSH
  // session on the machine waits 60 s for it.
  const home = mkdtempSync("/tmp/psc-staging-home-");
  const { sshd, pool } = await sshSetup({ sshd: { extraConfig: [`SetEnv HOME=${home}`] } });
  const [s3, gcs] = await Promise.all([startS3(), startGcs()]);
  Object.assign(process.env, s3.env, gcs.env, {
    AWS_EC2_METADATA_DISABLED: "true",
    METADATA_SERVER_DETECTION: "none",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  });
  const s3c = new S3Client({
    endpoint: s3.endpoint,
    forcePathStyle: true,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  await s3c.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const gcsStore = new GcsStore(BUCKET);
  await gcsStore.storage.createBucket(BUCKET);
  const tmp = mkdtempSync("/dev/shm/psc-staging-");
  const service = new StagingService({ hosts: pool });
  const localDir = (kind: "local" | "pool", rel: string): string => join(tmp, kind, rel);
  const bed: Bed = {
    sshd,
    pool,
    s3,
    gcs,
    s3c,
    gcsStore,
    service,
    tmp,
    url: (kind, rel) => {
      switch (kind) {
        case "local":
          return `file://${localDir("local", rel)}`;
        case "pool":
          return `ssh://pool${localDir("pool", rel)}`;
        case "s3":
          return `s3://${BUCKET}/${rel}`;
        case "gcs":
          return `gs://${BUCKET}/${rel}`;
      }
    },
    seed: async (kind, rel, files) => {
      for (const [name, body] of Object.entries(files)) {
        const full = rel === "" ? name : name === "" ? rel : `${rel}/${name}`;
        if (kind === "local" || kind === "pool") {
          const p = localDir(kind, full);
          mkdirSync(join(p, ".."), { recursive: true });
          writeFileSync(p, body);
        } else if (kind === "s3")
          await s3c.send(new PutObjectCommand({ Bucket: BUCKET, Key: full, Body: body }));
        else await gcsStore.storage.bucket(BUCKET).file(full).save(body, { resumable: false });
      }
    },
    read: async (kind, rel) => {
      const out: Record<string, Buffer> = {};
      if (kind === "local" || kind === "pool") {
        const root = localDir(kind, rel);
        if (statSync(root).isFile()) return { "": readFileSync(root) };
        const walk = (d: string): void => {
          for (const e of readdirSync(d, { withFileTypes: true })) {
            const p = join(d, e.name);
            if (e.isDirectory()) walk(p);
            else out[relative(root, p)] = readFileSync(p);
          }
        };
        walk(root);
      } else if (kind === "s3") {
        const res = await s3c.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: rel }));
        for (const o of res.Contents ?? []) {
          const body = await (
            await s3c.send(new GetObjectCommand({ Bucket: BUCKET, Key: o.Key! }))
          ).Body!.transformToByteArray();
          out[o.Key === rel ? "" : o.Key!.slice(rel.length + 1)] = Buffer.from(body);
        }
      } else {
        const [files] = await gcsStore.storage.bucket(BUCKET).getFiles({ prefix: rel });
        for (const f of files)
          out[f.name === rel ? "" : f.name.slice(rel.length + 1)] = (await f.download())[0];
      }
      return out;
    },
    close: async () => {
      await service.close();
      await pool.close();
      s3c.destroy();
      rmSync(tmp, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
    },
  };
  return bed;
}

/** A directory of many small files (tar-sized), nested names, odd names and one larger file. */
export function treeFixture(): Record<string, Buffer> {
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 40; i++) files[`small/f${i}.txt`] = Buffer.from(`line ${i}\n`.repeat(i + 1));
  files["nested/deeper/data.bin"] = Buffer.from(
    Array.from({ length: 3 * 1024 * 1024 }, (_, i) => (i * 7) & 0xff),
  );
  files["with space/ünïcode.txt"] = Buffer.from("odd names\n");
  files["empty.txt"] = Buffer.alloc(0);
  return files;
}
