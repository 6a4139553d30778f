// copyFile between real local stores: a source that fails while the destination is still
// preparing must fail the copy, not end the process with an unhandled 'error'.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { SidecarError } from "../../src/errors.js";
import { copyFile } from "../../src/staging/copy-file.js";
import { Progress } from "../../src/staging/progress.js";
import type { PutOptions, Store } from "../../src/staging/store.js";
import { LocalStore } from "../../src/staging/stores/local.js";

const dir = mkdtempSync(join(tmpdir(), "psc-copy-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The local store, reading a stream that fails after its first bytes (a connection lost mid-read). */
function failingSource(failed: () => void): Store {
  const local = new LocalStore();
  return Object.assign(Object.create(local) as LocalStore, {
    read: async () => {
      const s = new Readable({ read() {} });
      s.push(Buffer.alloc(1024, 7));
      setImmediate(() => {
        s.destroy(
          new SidecarError("STAGING_FAILED", "The connection to pool was lost during read x"),
        );
        failed();
      });
      return s;
    },
  });
}

describe("copyFile", () => {
  it("a source failing before the destination reads fails the copy and leaves nothing", async () => {
    let failed!: () => void;
    const sourceFailed = new Promise<void>((r) => (failed = r));
    const local = new LocalStore();
    // the destination awaits (as mkdir or a pool's spawn do) until the source has failed
    const dst = Object.assign(Object.create(local) as LocalStore, {
      put: async (p: string, data: Readable, o?: PutOptions) => {
        await sourceFailed;
        return local.put(p, data, o);
      },
    });
    writeFileSync(join(dir, "src.bin"), Buffer.alloc(4096, 7));
    const entry = { path: "", type: "file" as const, size: 4096, digests: {} };
    const err = await copyFile(
      failingSource(failed),
      join(dir, "src.bin"),
      entry,
      dst,
      join(dir, "out", "dst.bin"),
      { progress: new Progress("t", undefined) },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SidecarError);
    expect((err as SidecarError).message).toMatch(/lost during read/);
    expect(existsSync(join(dir, "out", "dst.bin"))).toBe(false);
    expect(existsSync(join(dir, "out")) ? readdirSync(join(dir, "out")) : []).toEqual([]);
  });
});
