// src/remote/staging/put.sh and commit.sh run with `sh` (no sshd): a file written under its
// temporary name with its size and SHA-256 printed, its mode set, a short or long stream refused
// (exit 3) and removed, the sha256sum fallback without openssl, then renamed into place.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pathWith, run, scratch } from "./run.js";

let s: ReturnType<typeof scratch>;
beforeEach(() => {
  s = scratch();
});
afterEach(() => s.done());

const body = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 31) & 0xff));
const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

describe("put.sh", () => {
  it("writes the temporary file (making its directory) and prints `size N` and the SHA-256", () => {
    const dir = join(s.dir, "new dir");
    const tmp = join(dir, ".f.psc-1.tmp");
    const r = run("put", [dir, tmp, body.length, "640"], body);
    expect(r.status).toBe(0);
    const [size, hash] = r.stdout.toString("utf8").split("\n");
    expect(size).toBe(`size ${body.length}`);
    expect(hash!.slice(0, 64)).toBe(sha(body));
    expect(readFileSync(tmp).equals(body)).toBe(true);
    expect(statSync(tmp).mode & 0o777).toBe(0o640);
  });

  it("takes a stream of unknown size (`-`) and leaves the mode alone (`-`)", () => {
    const tmp = join(s.dir, ".g.psc-2.tmp");
    const r = run("put", [s.dir, tmp, "-", "-"], "hello\n");
    expect(r.status).toBe(0);
    expect(r.stdout.toString("utf8")).toMatch(
      new RegExp(`^size 6\\n${sha(Buffer.from("hello\n"))}`),
    );
  });

  for (const [what, sent] of [
    ["short", body.subarray(0, 1000)],
    ["long", Buffer.concat([body, Buffer.from("x")])],
  ] as const) {
    it(`a ${what} stream: exit 3, a message, and no file left`, () => {
      const tmp = join(s.dir, ".h.psc-3.tmp");
      const r = run("put", [s.dir, tmp, body.length, "-"], sent);
      expect(r.status).toBe(3);
      expect(r.stderr).toContain(`received ${sent.length} bytes where ${body.length} were sent`);
      expect(r.stdout.length).toBe(0);
      expect(readdirSync(s.dir)).toEqual([]);
    });
  }

  it("hashes with sha256sum where there is no openssl", () => {
    const bin = pathWith(s.dir, ["mkdir", "tee", "sha256sum", "wc", "rm", "chmod"]);
    const tmp = join(s.dir, ".i.psc-4.tmp");
    const r = run("put", [s.dir, tmp, body.length, "-"], body, { PATH: bin });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString("utf8")).toBe(`size ${body.length}\n${sha(body)}  -\n`);
  });

  // 8 MiB and more: written and hashed by one python3 (tee's 8 KiB reads cost the pool CPU)
  const large = Buffer.alloc(9 << 20);
  for (let i = 0; i < large.length; i += 4096) large[i] = (i >> 12) & 0xff;

  it("a file of 8 MiB or more: written and hashed by python3, same reply", () => {
    const tmp = join(s.dir, ".l.psc-7.tmp");
    const r = run("put", [s.dir, tmp, large.length, "600"], large);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString("utf8")).toBe(`size ${large.length}\n${sha(large)} *stdin\n`);
    expect(readFileSync(tmp).equals(large)).toBe(true);
    expect(statSync(tmp).mode & 0o777).toBe(0o600);
  });

  it("a short stream of a large file: exit 3, and no file left", () => {
    const tmp = join(s.dir, ".m.psc-8.tmp");
    const r = run("put", [s.dir, tmp, large.length, "-"], large.subarray(0, 1 << 20));
    expect(r.status).toBe(3);
    expect(r.stderr).toContain(`received ${1 << 20} bytes where ${large.length} were sent`);
    expect(readdirSync(s.dir)).toEqual([]);
  });

  it("a large file where there is no python3 goes through tee", () => {
    const bin = pathWith(s.dir, ["mkdir", "tee", "sha256sum", "wc", "rm", "chmod"]);
    const tmp = join(s.dir, ".n.psc-9.tmp");
    const r = run("put", [s.dir, tmp, large.length, "-"], large, { PATH: bin });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString("utf8")).toBe(`size ${large.length}\n${sha(large)}  -\n`);
  });

  it("exits 1 when the directory cannot be made", () => {
    const r = run("put", ["/proc/nope", "/proc/nope/.t.tmp", 5, "-"], "hello");
    expect(r.status).toBe(1);
  });
});

describe("commit.sh", () => {
  it("renames the temporary file into place", () => {
    const tmp = join(s.dir, ".a.psc-5.tmp");
    run("put", [s.dir, tmp, 5, "-"], "hello");
    const dst = join(s.dir, `a 'b' "c" $d`);
    expect(run("commit", [tmp, dst]).status).toBe(0);
    expect(readFileSync(dst, "utf8")).toBe("hello");
    expect(existsSync(tmp)).toBe(false);
  });

  it("removes the temporary file and exits 1 when the rename fails", () => {
    const tmp = join(s.dir, ".a.psc-6.tmp");
    run("put", [s.dir, tmp, 5, "-"], "hello");
    expect(run("commit", [tmp, join(s.dir, "no such dir", "a")]).status).toBe(1);
    expect(readdirSync(s.dir)).toEqual([]);
  });
});
