// The one atomic write: whole content or none, the mode exactly as asked (owner-only stays
// owner-only), no temp file left behind, and `exclusive` never replacing a file.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeFileAtomic } from "../../src/util/atomic-write.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "psc-atomic-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mode = (f: string): number => statSync(f).mode & 0o777;

describe("writeFileAtomic", () => {
  it("replaces the content and leaves no temp file", () => {
    const f = join(dir, "a.json");
    writeFileAtomic(f, "one");
    writeFileAtomic(f, Buffer.from("two"));
    expect(readFileSync(f, "utf8")).toBe("two");
    expect(readdirSync(dir)).toEqual(["a.json"]);
  });

  it("gives the mode asked for, whatever the umask", () => {
    const old = process.umask(0o077);
    try {
      writeFileAtomic(join(dir, "pub"), "x", { mode: 0o644 });
    } finally {
      process.umask(old);
    }
    writeFileAtomic(join(dir, "key"), "x", { mode: 0o600 });
    expect(mode(join(dir, "pub"))).toBe(0o644);
    expect(mode(join(dir, "key"))).toBe(0o600);
  });

  it("keeps the mode of the file it replaces", () => {
    const f = join(dir, "k");
    writeFileSync(f, "old", { mode: 0o600 });
    writeFileAtomic(f, "new");
    expect(mode(f)).toBe(0o600);
  });

  it("writes a large buffer whole", () => {
    const f = join(dir, "big");
    const data = Buffer.alloc(8 << 20, 7);
    writeFileAtomic(f, data);
    expect(readFileSync(f).equals(data)).toBe(true);
  });

  it("exclusive: publishes a new file, never replaces one", () => {
    const f = join(dir, "lock");
    writeFileAtomic(f, "1\n", { mode: 0o600, exclusive: true });
    expect(readFileSync(f, "utf8")).toBe("1\n");
    expect(mode(f)).toBe(0o600);
    expect(() => writeFileAtomic(f, "2\n", { exclusive: true })).toThrow(
      expect.objectContaining({ code: "EEXIST" }),
    );
    expect(readFileSync(f, "utf8")).toBe("1\n");
    expect(readdirSync(dir)).toEqual(["lock"]);
  });
});
