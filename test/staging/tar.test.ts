// The tar codec against GNU tar (both directions), and its refusal of unsafe entries.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { safeRelative, safeSymlinkTarget } from "../../src/staging/safe-path.js";
import { decodeTar } from "../../src/staging/tar/decoder.js";
import { TarEncoder } from "../../src/staging/tar/encoder.js";

const dir = mkdtempSync(join(tmpdir(), "psc-tar-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function decodeAll(data: Buffer): Promise<Array<{ path: string; body: string }>> {
  const out: Array<{ path: string; body: string }> = [];
  for await (const it of decodeTar(Readable.from([data]), "test")) {
    const parts: Buffer[] = [];
    for await (const c of it.stream) parts.push(c as Buffer);
    out.push({ path: it.path, body: Buffer.concat(parts).toString() });
  }
  return out;
}

describe("tar codec", () => {
  it("writes what GNU tar extracts, long and non-ASCII names included", async () => {
    const long = `${"d".repeat(120)}/${"f".repeat(150)}.txt`;
    const pass = new PassThrough();
    const chunks: Buffer[] = [];
    pass.on("data", (c: Buffer) => chunks.push(c));
    const enc = new TarEncoder(pass);
    await enc.addFile("a.txt", 5, Buffer.from("hello"));
    await enc.addFile(long, 3, Readable.from([Buffer.from("abc")]), undefined, 0o755);
    await enc.addFile("ünï/çödé.txt", 2, Buffer.from("hi"));
    await enc.addDirectory("empty");
    await enc.end();
    const out = join(dir, "x1");
    mkdirSync(out);
    execFileSync("tar", ["-x", "-f", "-", "-C", out], { input: Buffer.concat(chunks) });
    expect(readFileSync(join(out, "a.txt"), "utf8")).toBe("hello");
    expect(readFileSync(join(out, long), "utf8")).toBe("abc");
    expect(readFileSync(join(out, "ünï/çödé.txt"), "utf8")).toBe("hi");
    expect(spawnSync("test", ["-d", join(out, "empty")]).status).toBe(0);
    expect(spawnSync("test", ["-x", join(out, long)]).status).toBe(0);
  });

  it("reads what GNU tar writes (gnu and pax formats)", async () => {
    const src = join(dir, "src");
    mkdirSync(join(src, "sub"), { recursive: true });
    const long = "n".repeat(130);
    writeFileSync(join(src, "sub", long), "x".repeat(1000));
    writeFileSync(join(src, "b"), "");
    for (const format of ["gnu", "pax", "ustar"]) {
      const names = format === "ustar" ? ["b"] : ["b", `sub/${long}`];
      const data = execFileSync("tar", [
        "-c",
        "-f",
        "-",
        `--format=${format}`,
        "-C",
        src,
        ...names,
      ]);
      const got = await decodeAll(data);
      expect(got.map((g) => g.path)).toEqual(names);
      if (format !== "ustar") expect(got[1]!.body).toBe("x".repeat(1000));
    }
  });

  it("skips an unread body and still reads the next entry", async () => {
    const src = join(dir, "src2");
    mkdirSync(src);
    writeFileSync(join(src, "one"), "1".repeat(5000));
    writeFileSync(join(src, "two"), "2");
    const data = execFileSync("tar", ["-c", "-f", "-", "-C", src, "one", "two"]);
    const names: string[] = [];
    let body = "";
    for await (const it of decodeTar(Readable.from([data]), "t")) {
      names.push(it.path);
      if (it.path === "two") for await (const c of it.stream) body += String(c);
    }
    expect(names).toEqual(["one", "two"]);
    expect(body).toBe("2");
  });

  it("refuses traversal, absolute names and links (STAGING_UNSAFE_PATH)", async () => {
    const py = (members: string): Buffer =>
      execFileSync("python3", [
        "-c",
        `import tarfile,io,sys\nb=io.BytesIO()\nt=tarfile.open(fileobj=b,mode='w')\n${members}\nt.close()\nsys.stdout.buffer.write(b.getvalue())`,
      ]);
    const file = (name: string) =>
      `i=tarfile.TarInfo(${JSON.stringify(name)}); i.size=1; t.addfile(i, io.BytesIO(b'x'))`;
    for (const [members, re] of [
      [file("../evil"), /`\.\.` segment/],
      [file("ok/../../evil"), /`\.\.` segment/],
      [file("/etc/evil"), /absolute/],
      [
        `i=tarfile.TarInfo('l'); i.type=tarfile.SYMTYPE; i.linkname='/etc/passwd'; t.addfile(i)`,
        /link to `\/etc\/passwd`/,
      ],
      [`i=tarfile.TarInfo('h'); i.type=tarfile.LNKTYPE; i.linkname='../x'; t.addfile(i)`, /link/],
    ] as const) {
      await expect(decodeAll(py(members))).rejects.toMatchObject({
        code: "STAGING_UNSAFE_PATH",
        message: expect.stringMatching(re),
      });
    }
  });

  it("rejects a corrupt stream", async () => {
    const bad = Buffer.alloc(1024, 1);
    await expect(decodeAll(bad)).rejects.toThrow(/checksum/);
  });
});

describe("safe paths", () => {
  it("normalises good names and refuses bad ones", () => {
    expect(safeRelative("a/./b//c", "t")).toBe("a/b/c");
    for (const bad of ["..", "a/../../b", "/abs", "a\0b", "", "."])
      expect(() => safeRelative(bad, "t")).toThrow();
    expect(safeSymlinkTarget("a/l", "../b", "t")).toBe("b");
    expect(() => safeSymlinkTarget("a/l", "../../b", "t")).toThrow(/outside/);
    expect(() => safeSymlinkTarget("l", "/etc", "t")).toThrow(/absolute/);
  });

  it("a symlink escaping a local directory is refused", async () => {
    const { LocalStore } = await import("../../src/staging/stores/local.js");
    const root = join(dir, "links");
    mkdirSync(join(root, "d"), { recursive: true });
    writeFileSync(join(root, "d", "f"), "f");
    symlinkSync("d", join(root, "inside"));
    const ok = await new LocalStore().list(root);
    expect(ok.map((e) => e.path).sort()).toEqual(["d/f", "inside/f"]);
    symlinkSync("../../etc", join(root, "d", "escape"));
    await expect(new LocalStore().list(root)).rejects.toMatchObject({
      code: "STAGING_UNSAFE_PATH",
    });
  });
});
