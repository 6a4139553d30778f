// Every store to every store, files and directories, checked byte for byte; re-runs skip.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { type Bed, KINDS, startBed, treeFixture } from "./bed.js";

stopAllAfterAll();
let bed: Bed;
beforeAll(async () => {
  bed = await startBed();
  const tree = treeFixture();
  const one = {
    "": Buffer.from(Array.from({ length: 10 * 1024 * 1024 + 123 }, (_, i) => (i * 13) & 0xff)),
  };
  for (const k of KINDS) {
    await bed.seed(k, "seed/tree", tree);
    await bed.seed(k, "seed/one.bin", one);
  }
}, 120_000);
afterAll(async () => await bed?.close());

const sorted = (r: Record<string, Buffer>): Array<[string, string]> =>
  Object.entries(r)
    .map(([k, v]) => [k, v.toString("base64")] as [string, string])
    .sort();

describe.each(KINDS)("from %s", (from) => {
  it.each(KINDS)(
    "to %s: a file and a directory, byte for byte",
    { timeout: 120_000 },
    async (to) => {
      const dst = `out/${from}-${to}`;
      const f = await bed.service.transfer({
        src: bed.url(from, "seed/one.bin"),
        dst: bed.url(to, `${dst}/one.bin`),
        type: "file",
      });
      expect(f).toMatchObject({ files: 1, skipped: 0, bytes: 10 * 1024 * 1024 + 123 });
      expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
      const d = await bed.service.transfer({
        src: bed.url(from, "seed/tree"),
        dst: bed.url(to, `${dst}/tree`),
        type: "directory",
      });
      expect(d).toMatchObject({ files: 43, skipped: 0 });
      expect(sorted(await bed.read(to, `${dst}/one.bin`))).toEqual(
        sorted(await bed.read(from, "seed/one.bin")),
      );
      expect(sorted(await bed.read(to, `${dst}/tree`))).toEqual(
        sorted(await bed.read(from, "seed/tree")),
      );
      // a second run finds everything identical
      const again = await bed.service.transfer({
        src: bed.url(from, "seed/tree"),
        dst: bed.url(to, `${dst}/tree`),
        type: "directory",
      });
      expect(again).toMatchObject({ files: 0, skipped: 43, bytes: 0 });
      const f2 = await bed.service.transfer({
        src: bed.url(from, "seed/one.bin"),
        dst: bed.url(to, `${dst}/one.bin`),
        type: "file",
      });
      expect(f2).toMatchObject({ skipped: 1, method: "skip" });
    },
  );
});

describe("shape", () => {
  it("many small files to and from the pool go as one tar stream", {
    timeout: 60_000,
  }, async () => {
    const a = await bed.service.transfer({
      src: bed.url("local", "seed/tree"),
      dst: bed.url("pool", "shape/in"),
      type: "directory",
    });
    expect(a.method).toBe("tar-in");
    const b = await bed.service.transfer({
      src: bed.url("pool", "shape/in"),
      dst: bed.url("local", "shape/out"),
      type: "directory",
    });
    expect(b.method).toBe("tar-out");
    const c = await bed.service.transfer({
      src: bed.url("pool", "shape/in"),
      dst: bed.url("pool", "shape/in2"),
      type: "directory",
    });
    expect(c.method).toBe("tar");
  });

  it("a changed file is sent again, the rest skipped, and the change lands", {
    timeout: 60_000,
  }, async () => {
    await bed.seed("local", "chg", treeFixture());
    await bed.service.transfer({
      src: bed.url("local", "chg"),
      dst: bed.url("pool", "chg"),
      type: "directory",
    });
    await bed.seed("local", "chg", { "small/f3.txt": Buffer.from("changed!") });
    const r = await bed.service.transfer({
      src: bed.url("local", "chg"),
      dst: bed.url("pool", "chg"),
      type: "directory",
    });
    expect(r).toMatchObject({ files: 1, skipped: 42 });
    expect((await bed.read("pool", "chg"))["small/f3.txt"]!.toString()).toBe("changed!");
  });

  it("auto type, {cwd}, and a bare path on a host", { timeout: 60_000 }, async () => {
    const cwd = `${bed.tmp}/local/seed`;
    const r = await bed.service.transfer({
      src: "pw://{cwd}/tree",
      cwd,
      dst: `${bed.tmp}/pool/auto`,
      host: "pool",
    });
    expect(r).toMatchObject({ files: 43 });
    expect(r.dst).toBe(`ssh://pool${bed.tmp}/pool/auto`);
  });

  it("reports progress and records transfers", { timeout: 60_000 }, async () => {
    const seen: number[] = [];
    const events: string[] = [];
    const r = await bed.service.transfer(
      {
        src: bed.url("s3", "seed/tree"),
        dst: bed.url("pool", "progress"),
        type: "directory",
        item: "tree",
      },
      (p) => seen.push(p.files),
    );
    expect(r.files).toBe(43);
    expect(seen.at(-1)).toBe(43);
    const rec = bed.service.list().find((t) => t.id === r.id)!;
    expect(rec).toMatchObject({
      state: "done",
      item: "tree",
      files: 43,
      total_files: 43,
      total_bytes: rec.bytes,
    });
    expect(events).toEqual([]);
  });
});
