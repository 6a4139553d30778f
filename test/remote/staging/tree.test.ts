// src/remote/staging/tree.sh run with `sh` (no sshd): a tar archive and its SHA-256 on stdin,
// extracted and renamed into a new root or merged into an existing one; a wrong hash refused
// (exit 4, the psc-integrity line) and a broken archive (exit 1), leaving nothing behind.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { treeTemps } from "../../../src/staging/stores/pool-commands.js";
import { run, scratch } from "./run.js";

let s: ReturnType<typeof scratch>;
beforeEach(() => {
  s = scratch();
});
afterEach(() => s.done());

/** A tar archive of `files` (relative names), made by this machine's tar. */
function archive(files: Record<string, string>): Buffer {
  const src = join(s.dir, "src");
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(src, name, ".."), { recursive: true });
    writeFileSync(join(src, name), text);
  }
  return execFileSync("tar", ["-c", "-f", "-", "-C", src, ...Object.keys(files)]);
}

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

/** tree.sh for `root` with the archive then `hash` on stdin. */
function tree(root: string, tar: Buffer, hash = sha(tar), length = tar.length) {
  const t = treeTemps(root, "tok1");
  const parent = root.slice(0, root.lastIndexOf("/")) || "/";
  return run(
    "tree",
    [root, t.inside, t.beside, parent, length],
    Buffer.concat([tar, Buffer.from(`${hash}\n`)]),
  );
}

const files = { "a.txt": "alpha\n", "sub/b.txt": "beta\n", "sub/deeper/c d.txt": "gamma\n" };

describe("tree.sh", () => {
  it("extracts into a new root (its parent made), renamed into place whole", () => {
    const root = join(s.dir, "out", `x 'y' "z" $w`);
    const r = tree(root, archive(files));
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(root, "sub/deeper/c d.txt"), "utf8")).toBe("gamma\n");
    expect(readdirSync(join(s.dir, "out"))).toEqual([`x 'y' "z" $w`]);
  });

  it("merges into an existing root: new files replace old ones, others stay", () => {
    const root = join(s.dir, "dst");
    mkdirSync(root);
    writeFileSync(join(root, "a.txt"), "old\n");
    writeFileSync(join(root, "keep.txt"), "kept\n");
    const r = tree(root, archive(files));
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(root, "a.txt"), "utf8")).toBe("alpha\n");
    expect(readFileSync(join(root, "keep.txt"), "utf8")).toBe("kept\n");
    expect(readdirSync(root).sort()).toEqual(["a.txt", "keep.txt", "sub"]);
  });

  it("refuses a wrong hash: exit 4, the psc-integrity line, nothing left behind", () => {
    const tar = archive(files);
    const wrong = "0".repeat(64);
    const root = join(s.dir, "out", "new");
    const r = tree(root, tar, wrong);
    expect(r.status).toBe(4);
    expect(r.stdout.toString("utf8")).toBe(`psc-integrity got=${sha(tar)} sent=${wrong}\n`);
    expect(existsSync(root)).toBe(false);
    expect(readdirSync(join(s.dir, "out"))).toEqual([]);
    // into an existing root: its contents untouched, no temporary directory inside
    const old = join(s.dir, "old");
    mkdirSync(old);
    writeFileSync(join(old, "a.txt"), "old\n");
    expect(tree(old, tar, wrong).status).toBe(4);
    expect(readdirSync(old)).toEqual(["a.txt"]);
    expect(readFileSync(join(old, "a.txt"), "utf8")).toBe("old\n");
  });

  it("a broken archive: exit 1, nothing left behind", () => {
    const junk = Buffer.alloc(4096, 7);
    const root = join(s.dir, "out2", "new");
    const r = tree(root, junk);
    expect(r.status).toBe(1);
    expect(existsSync(root)).toBe(false);
    expect(readdirSync(join(s.dir, "out2"))).toEqual([]);
  });

  it("reads exactly LENGTH bytes of archive before the hash", () => {
    const tar = archive(files);
    // the hash right after the archive: a LENGTH too short cuts the archive and fails
    const r = tree(join(s.dir, "cut"), tar, sha(tar), tar.length - 1024);
    expect(r.status).not.toBe(0);
    expect(existsSync(join(s.dir, "cut"))).toBe(false);
  });

  it("refuses a LENGTH that is not a number", () => {
    expect(tree(join(s.dir, "n"), archive(files), undefined, Number.NaN).status).toBe(1);
    expect(existsSync(join(s.dir, "n"))).toBe(false);
  });
});
