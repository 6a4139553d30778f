// Bad input and faults: each gives a clear STAGING_* error naming item, URLs and cause, and
// leaves nothing partial (no file, no temporary name) at the destination.
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StagingService } from "../../src/staging/service.js";
import { stopAllAfterAll, warnSkip } from "../testbed/hooks.js";
import { type Bed, BUCKET, startBed, treeFixture } from "./bed.js";

stopAllAfterAll();
let bed: Bed;
const mounts: string[] = [];
beforeAll(async () => {
  bed = await startBed();
  await bed.seed("local", "in/tree", treeFixture());
  await bed.seed("local", "in/big.bin", { "": Buffer.alloc(3 * 1024 * 1024, 1) });
}, 120_000);
afterAll(async () => {
  for (const m of mounts) spawnSync("umount", ["-l", m]);
  await bed?.close();
});

/** Every file under dir, recursively (temporary names included). */
function allFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => !d.isDirectory())
    .map((d) => join(d.parentPath, d.name));
}

/** A tmpfs of `size`, mounted by the test (root); undefined (and a loud skip) if it cannot be. */
function mountTmpfs(dir: string, opts: string): string | undefined {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", opts, "tmpfs", dir]);
  if (r.status !== 0) {
    warnSkip(
      "tmpfs fault test",
      `mount -t tmpfs failed (${r.stderr.toString().trim()}); needs root`,
    );
    return undefined;
  }
  mounts.push(dir);
  return dir;
}

async function fails(
  p: Parameters<StagingService["transfer"]>[0],
  service = bed.service,
): Promise<{ code: string; message: string; data: Record<string, unknown> }> {
  try {
    await service.transfer(p);
  } catch (err) {
    return err as { code: string; message: string; data: Record<string, unknown> };
  }
  throw new Error(`expected ${p.src} -> ${p.dst} to fail`);
}

describe("bad input", () => {
  it("unknown scheme and relative paths are STAGING_INVALID", async () => {
    expect(await fails({ src: "ftp://host/x", dst: bed.url("local", "x") })).toMatchObject({
      code: "STAGING_INVALID",
      message: expect.stringContaining("unknown scheme `ftp://`"),
    });
    expect(await fails({ src: "pw://relative/x", dst: bed.url("local", "x") })).toMatchObject({
      code: "STAGING_INVALID",
      message: expect.stringContaining("relative"),
    });
    expect(
      await fails({ src: bed.url("local", "in/big.bin"), dst: "data/out", host: "pool" }),
    ).toMatchObject({ code: "STAGING_INVALID" });
  });

  it("a missing source names the item and both URLs", async () => {
    for (const kind of ["local", "pool", "s3", "gcs"] as const) {
      const e = await fails({
        src: bed.url(kind, "nothing/here"),
        dst: bed.url("local", "out/missing"),
        item: "model",
        type: "file",
      });
      expect(e.code).toBe("STAGING_NOT_FOUND");
      expect(e.message).toContain("`model`");
      expect(e.message).toContain(
        bed.url(kind, "nothing/here").replace("ssh://pool", "ssh://pool"),
      );
      expect(e.message).toContain("does not exist");
    }
    expect(allFiles(join(bed.tmp, "local", "out"))).toEqual([]);
  });

  it("a missing bucket, as source and as destination", async () => {
    for (const scheme of ["s3", "gs"]) {
      const src = await fails({
        src: `${scheme}://no-such-bucket-x/k`,
        dst: bed.url("local", "out/nb"),
      });
      expect(src).toMatchObject({
        code: "STAGING_NOT_FOUND",
        message: expect.stringMatching(/bucket/i),
      });
      const dst = await fails({
        src: bed.url("local", "in/big.bin"),
        dst: `${scheme}://no-such-bucket-x/k`,
        type: "file",
      });
      expect(dst).toMatchObject({
        code: "STAGING_NOT_FOUND",
        message: expect.stringMatching(/bucket/i),
      });
    }
  });

  it("the type must match the source", async () => {
    expect(
      await fails({
        src: bed.url("local", "in/tree"),
        dst: bed.url("pool", "out/t"),
        type: "file",
      }),
    ).toMatchObject({
      code: "STAGING_INVALID",
      message: expect.stringContaining('"type": "directory"'),
    });
  });
});

describe("credentials", () => {
  it("no S3 credentials: STAGING_CREDENTIALS, and no secret in the message", async () => {
    const saved = { ...process.env };
    const secret = process.env.AWS_SECRET_ACCESS_KEY!;
    delete process.env.AWS_ACCESS_KEY_ID;
    delete process.env.AWS_SECRET_ACCESS_KEY;
    Object.assign(process.env, {
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/creds",
      AWS_CONFIG_FILE: "/nonexistent/config",
      AWS_EC2_METADATA_DISABLED: "true",
    });
    const service = new StagingService({ hosts: bed.pool });
    try {
      const e = await fails(
        {
          src: bed.url("local", "in/big.bin"),
          dst: `s3://${BUCKET}/nocreds`,
          type: "file",
          item: "weights",
        },
        service,
      );
      expect(e.code).toBe("STAGING_CREDENTIALS");
      expect(e.message).toContain("`weights`");
      expect(e.message).not.toContain(secret);
    } finally {
      await service.close();
      process.env = saved;
    }
  });

  it("S3 credentials that expire are fetched again during a run, not read once (credential_process)", {
    timeout: 60_000,
  }, async () => {
    const saved = { ...process.env };
    const dir = join(bed.tmp, "aws-refresh");
    mkdirSync(dir, { recursive: true });
    const count = join(dir, "calls");
    // a credential_process (as SSO or a vault helper would be) whose credentials expire within the
    // SDK's refresh window: every signing after the first must ask for them again
    const helper = join(dir, "creds.sh");
    writeFileSync(
      helper,
      `#!/bin/sh\necho x >> ${count}\nexp=$(date -u -d '+60 seconds' +%Y-%m-%dT%H:%M:%SZ)\nprintf '{"Version":1,"AccessKeyId":"${bed.s3.accessKeyId}","SecretAccessKey":"${bed.s3.secretAccessKey}","Expiration":"%s"}' "$exp"\n`,
    );
    chmodSync(helper, 0o755);
    writeFileSync(join(dir, "config"), `[default]\ncredential_process = ${helper}\n`);
    delete process.env.AWS_ACCESS_KEY_ID;
    delete process.env.AWS_SECRET_ACCESS_KEY;
    Object.assign(process.env, {
      AWS_CONFIG_FILE: join(dir, "config"),
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/creds",
      AWS_EC2_METADATA_DISABLED: "true",
    });
    const service = new StagingService({ hosts: bed.pool });
    const calls = (): number =>
      existsSync(count) ? readFileSync(count, "utf8").split("\n").filter(Boolean).length : 0;
    try {
      await service.transfer({
        src: bed.url("local", "in/big.bin"),
        dst: `s3://${BUCKET}/refresh/a`,
        type: "file",
      });
      const first = calls();
      expect(first).toBeGreaterThanOrEqual(1);
      await service.transfer({
        src: bed.url("local", "in/big.bin"),
        dst: `s3://${BUCKET}/refresh/b`,
        type: "file",
      });
      expect(calls()).toBeGreaterThan(first);
    } finally {
      await service.close();
      process.env = saved;
    }
  });

  it("no GCS credentials (authenticated endpoint): STAGING_CREDENTIALS", async () => {
    const saved = { ...process.env };
    delete process.env.STORAGE_EMULATOR_HOST;
    Object.assign(process.env, {
      PARSL_SIDECAR_GCS_ENDPOINT: bed.gcs.apiEndpoint,
      GOOGLE_APPLICATION_CREDENTIALS: "/nonexistent/sa.json",
    });
    const service = new StagingService({ hosts: bed.pool });
    try {
      const e = await fails(
        { src: `gs://${BUCKET}/x`, dst: bed.url("local", "out/gcreds") },
        service,
      );
      expect(e).toMatchObject({
        code: "STAGING_CREDENTIALS",
        message: expect.stringContaining("credentials"),
      });
    } finally {
      await service.close();
      process.env = saved;
    }
  });
});

describe("pool faults", () => {
  it("permission denied on the pool (a read-only mount; root ignores modes)", {
    timeout: 120_000,
  }, async (ctx) => {
    const ro = mountTmpfs(join(bed.tmp, "pool", "ro"), "ro,size=1m");
    if (!ro) return ctx.skip();
    const f = await fails({
      src: bed.url("local", "in/big.bin"),
      dst: `${ro}/sub/big.bin`,
      host: "pool",
      item: "big",
    });

    expect(f).toMatchObject({
      code: "STAGING_PERMISSION",
      message: expect.stringMatching(/`big`.*Read-only file system/s),
    });
    const d = await fails({ src: bed.url("local", "in/tree"), dst: `${ro}/tree`, host: "pool" });
    expect(d.code).toBe("STAGING_PERMISSION");
    expect(allFiles(ro)).toEqual([]);
  });

  it("a full disk on the pool: STAGING_NO_SPACE and nothing partial", {
    timeout: 120_000,
  }, async (ctx) => {
    const small = mountTmpfs(join(bed.tmp, "pool", "small"), "size=1m");
    if (!small) return ctx.skip();
    writeFileSync(join(small, "keep.txt"), "already here");
    const f = await fails({
      src: bed.url("local", "in/big.bin"),
      dst: `${small}/big.bin`,
      host: "pool",
      item: "big",
    });
    expect(f).toMatchObject({
      code: "STAGING_NO_SPACE",
      message: expect.stringContaining("No space left on device"),
    });
    const d = await fails({
      src: bed.url("local", "in/tree"),
      dst: `${small}/tree`,
      host: "pool",
      item: "tree",
    });
    expect(d.code).toBe("STAGING_NO_SPACE");
    const d2 = await fails({
      src: bed.url("local", "in/tree"),
      dst: small,
      host: "pool",
      item: "into-existing",
    });
    expect(d2.code).toBe("STAGING_NO_SPACE");
    expect(allFiles(small)).toEqual([join(small, "keep.txt")]);
  });

  it("a full disk here: STAGING_NO_SPACE and nothing partial", {
    timeout: 120_000,
  }, async (ctx) => {
    const small = mountTmpfs(join(bed.tmp, "local", "small"), "size=1m");
    if (!small) return ctx.skip();
    const f = await fails({ src: bed.url("pool", "nothing"), dst: `file://${small}/x` });
    expect(f, f.message).toMatchObject({ code: "STAGING_NOT_FOUND" });
    await bed.service.transfer({
      src: bed.url("local", "in/tree"),
      dst: bed.url("pool", "src-tree"),
      type: "directory",
    });
    const d = await fails({
      src: bed.url("pool", "src-tree"),
      dst: `file://${small}/tree`,
      type: "directory",
    });
    expect(d.code).toBe("STAGING_NO_SPACE");
    expect(allFiles(small)).toEqual([]);
  });
});

describe("traversal", () => {
  it("S3 keys with ../ are refused", async () => {
    await bed.seed("s3", "trav", { "a/../../evil": Buffer.from("x"), ok: Buffer.from("y") });
    const e = await fails({
      src: `s3://${BUCKET}/trav`,
      dst: bed.url("local", "out/trav"),
      type: "directory",
    });
    expect(e).toMatchObject({
      code: "STAGING_UNSAFE_PATH",
      message: expect.stringContaining("`..`"),
    });
    expect(existsSync(join(bed.tmp, "local", "out", "trav"))).toBe(false);
    expect(existsSync(join(bed.tmp, "local", "evil"))).toBe(false);
  });

  it("GCS names with ../ are refused", async () => {
    await bed.seed("gcs", "trav", { "../../evil": Buffer.from("x") });
    expect(
      await fails({
        src: `gs://${BUCKET}/trav`,
        dst: bed.url("pool", "out/gtrav"),
        type: "directory",
      }),
    ).toMatchObject({ code: "STAGING_UNSAFE_PATH" });
  });

  it("a symlink leaving a pool directory is refused", async () => {
    const dir = join(bed.tmp, "pool", "links");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "f"), "f");
    symlinkSync("../../../../etc", join(dir, "escape"));
    expect(
      await fails({
        src: `${dir}`,
        host: "pool",
        dst: bed.url("local", "out/links"),
        type: "directory",
      }),
    ).toMatchObject({ code: "STAGING_UNSAFE_PATH", message: expect.stringContaining("escape") });
    expect(existsSync(join(bed.tmp, "local", "out", "links"))).toBe(false);
  });
});

describe("connection drops", () => {
  beforeAll(
    async () => await bed.seed("local", "in/large.bin", { "": Buffer.alloc(256 * 1024 * 1024, 5) }),
  );

  it("one drop mid-transfer is retried and the file arrives whole", {
    timeout: 120_000,
  }, async () => {
    const p = bed.service.transfer(
      {
        src: bed.url("local", "in/large.bin"),
        dst: bed.url("pool", "drop/once.bin"),
        type: "file",
      },
      () => undefined,
    );
    await new Promise((r) => setTimeout(r, 300));
    await bed.sshd.killConnections();
    const r = await p;
    expect(r.bytes).toBe(256 * 1024 * 1024);
    expect(
      execFileSync("cmp", [
        join(bed.tmp, "local", "in", "large.bin"),
        join(bed.tmp, "pool", "drop", "once.bin"),
      ]).toString(),
    ).toBe("");
    expect(allFiles(join(bed.tmp, "pool", "drop"))).toEqual([
      join(bed.tmp, "pool", "drop", "once.bin"),
    ]);
  });

  it("repeated drops fail the call clearly and leave nothing at the destination", {
    timeout: 180_000,
  }, async () => {
    // connections are killed every 150 ms until both calls have settled
    let stop = false;
    const killer = (async () => {
      while (!stop) {
        await new Promise((r) => setTimeout(r, 150));
        await bed.sshd.killConnections();
      }
    })();
    const both = await Promise.allSettled([
      bed.service.transfer({
        src: bed.url("local", "in/large.bin"),
        dst: bed.url("pool", "drop2/file.bin"),
        type: "file",
        item: "large",
      }),
      bed.service.transfer({
        src: bed.url("local", "in/tree"),
        dst: bed.url("pool", "drop2/tree"),
        type: "directory",
        item: "tree",
      }),
    ]);
    stop = true;
    await killer;
    // temporaries a killed session left are removed once the connection is back
    await bed.service.idle();
    for (const r of both) {
      if (r.status === "rejected") {
        expect(r.reason).toMatchObject({
          code: "STAGING_FAILED",
          message: expect.stringMatching(/`(large|tree)`.*SSH connection/s),
        });
      }
    }
    expect(both.some((r) => r.status === "rejected")).toBe(true);
    // only complete files may be there (a transfer that succeeded); never temporary names
    const left = allFiles(join(bed.tmp, "pool", "drop2"));
    expect(left.filter((f) => f.includes(".psc-"))).toEqual([]);
    if (both[0].status === "rejected")
      expect(existsSync(join(bed.tmp, "pool", "drop2", "file.bin"))).toBe(false);
    if (both[1].status === "rejected")
      expect(existsSync(join(bed.tmp, "pool", "drop2", "tree"))).toBe(false);
    chmodSync(join(bed.tmp, "pool"), 0o755);
  });
});
