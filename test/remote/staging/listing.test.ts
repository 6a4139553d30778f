// src/remote/staging/stat.sh, list.sh, digest.sh and tar.sh run with `sh` (no sshd): what they
// print for files, directories and symlinks, and their exit codes.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseDigests } from "../../../src/staging/stores/pool-commands.js";
import { run, scratch } from "./run.js";

let s: ReturnType<typeof scratch>;
beforeEach(() => {
  s = scratch();
});
afterEach(() => s.done());

const ODD = `a b 'c' "d" $e`;

describe("stat.sh", () => {
  it("prints type|size|mtime|mode of a file and a directory, following symlinks", () => {
    const f = join(s.dir, ODD);
    writeFileSync(f, "12345");
    chmodSync(f, 0o640);
    utimesSync(f, 1_700_000_000, 1_700_000_000);
    expect(run("stat", [f]).stdout.toString()).toBe("regular file|5|1700000000|640\n");
    symlinkSync(f, join(s.dir, "link"));
    expect(run("stat", [join(s.dir, "link")]).stdout.toString()).toBe(
      "regular file|5|1700000000|640\n",
    );
    expect(run("stat", [s.dir]).stdout.toString()).toMatch(/^directory\|\d+\|\d+\|700\n$/);
  });

  it("exits 2 for a missing path, printing `dangling` for a symlink to nothing", () => {
    const missing = run("stat", [join(s.dir, "nope")]);
    expect([missing.status, missing.stdout.toString()]).toEqual([2, ""]);
    symlinkSync(join(s.dir, "nope"), join(s.dir, "dangling"));
    const d = run("stat", [join(s.dir, "dangling")]);
    expect([d.status, d.stdout.toString()]).toEqual([2, "dangling\n"]);
  });
});

describe("list.sh", () => {
  it("lists symlinks first, then files, empty directories and dangling links, NUL-separated", () => {
    const root = join(s.dir, ODD);
    mkdirSync(join(root, "sub", "empty"), { recursive: true });
    writeFileSync(join(root, "sub", "f.txt"), "abc");
    chmodSync(join(root, "sub", "f.txt"), 0o600);
    chmodSync(join(root, "sub", "empty"), 0o755);
    utimesSync(join(root, "sub", "f.txt"), 1_700_000_000, 1_700_000_000);
    symlinkSync("sub/f.txt", join(root, "ln"));
    symlinkSync("gone", join(root, "bad"));
    const r = run("list", [root]);
    expect(r.status).toBe(0);
    const fields = r.stdout.toString("utf8").split("\0");
    const eq = fields.indexOf("=");
    const links = fields.slice(0, eq);
    expect(links.length).toBe(4);
    const pairs = [
      [links[0], links[1]],
      [links[2], links[3]],
    ].sort();
    expect(pairs).toEqual([
      ["L bad", "gone"],
      ["L ln", "sub/f.txt"],
    ]);
    const rest = fields
      .slice(eq + 1)
      .filter((f) => f !== "")
      .map((f) => f.replace(/^([fd] \d+ )\d+(\.\d+)?/, "$1T"))
      .sort();
    expect(rest).toEqual([
      "d 0 T 755 sub/empty",
      "f 3 T 600 ln",
      "f 3 T 600 sub/f.txt",
      "x 0 0 0 bad",
    ]);
  });

  it("exits 1 when the root cannot be entered", () => {
    expect(run("list", [join(s.dir, "nope")]).status).toBe(1);
  });
});

describe("digest.sh", () => {
  for (const algo of ["sha256", "md5"] as const) {
    it(`${algo}: one line per path from stdin, in order`, () => {
      const names = [join(s.dir, "one"), join(s.dir, ODD), join(s.dir, "new\nline")];
      for (const [i, n] of names.entries()) writeFileSync(n, `content ${i}`);
      const r = run("digest", [algo], names.map((n) => `${n}\0`).join(""));
      expect(r.status, r.stderr).toBe(0);
      const got = parseDigests(r.stdout.toString("utf8"), names, algo);
      expect(names.map((n) => got.get(n))).toEqual(
        names.map((_, i) => createHash(algo).update(`content ${i}`).digest("hex")),
      );
    });
  }

  it("refuses an algorithm it does not know", () => {
    const r = run("digest", ["sha1"], "");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("unknown digest");
  });
});

describe("tar.sh", () => {
  it("tars the names given on stdin, links followed, relative to the root", () => {
    const root = join(s.dir, ODD);
    mkdirSync(join(root, "sub"), { recursive: true });
    writeFileSync(join(root, "sub", "f.txt"), "abc");
    writeFileSync(join(root, "other.txt"), "not asked for");
    symlinkSync("sub/f.txt", join(root, "ln"));
    const r = run("tar", [root], "sub/f.txt\0ln\0");
    expect(r.status, r.stderr).toBe(0);
    const out = join(s.dir, "out");
    mkdirSync(out);
    execFileSync("tar", ["-x", "-f", "-", "-C", out], { input: r.stdout });
    expect(
      execFileSync("find", [out, "-printf", "%y %P\\n"], { encoding: "utf8" }).split("\n").sort(),
    ).toEqual(["", "d ", "d sub", "f ln", "f sub/f.txt"]);
  });

  it("exits 1 when the root cannot be entered", () => {
    expect(run("tar", [join(s.dir, "nope")], "x\0").status).toBe(1);
  });
});
