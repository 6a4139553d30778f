// src/remote/env/container-probe.sh, conda-dir.sh and sha256.sh run with `sh` (no sshd): the
// key=value lines they print and the checksum.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseLines } from "../../../src/env/probe.js";
import { REMOTE } from "../helpers.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "psc-remote-envp-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function run(name: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync("/bin/sh", [join(REMOTE, "env", name), ...args], {
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, ...parseLines(r.stdout) };
}

/** A directory to be the whole PATH: links (name to absolute path) and small scripts. */
function bin(links: Record<string, string>, extra: Record<string, string> = {}): string {
  const b = join(dir, "bin");
  mkdirSync(b, { recursive: true });
  for (const [name, target] of Object.entries(links)) symlinkSync(target, join(b, name));
  for (const [name, text] of Object.entries(extra)) {
    writeFileSync(join(b, name), text);
    chmodSync(join(b, name), 0o755);
  }
  return b;
}

describe("container-probe.sh", () => {
  it("path, exists, the builder on PATH and PATH itself", () => {
    const img = join(dir, `i m 'g' "x" $y.sif`);
    const b = bin({}, { apptainer: "#!/bin/sh\n" });
    const missing = run("container-probe.sh", [img], { PATH: b });
    expect(missing.status).toBe(0);
    expect(Object.fromEntries(missing.one)).toEqual({
      path: img,
      builder: join(b, "apptainer"),
      host_path: b,
    });
    writeFileSync(img, "");
    expect(run("container-probe.sh", [img], { PATH: b }).one.get("exists")).toBe("1");
    const none = run("container-probe.sh", [img], { PATH: join(dir, "nothing") });
    expect(none.one.has("builder")).toBe(false);
  });
});

describe("conda-dir.sh", () => {
  it("a missing CONDA_DIR: its parent made and writable, the user, bash", () => {
    const d = join(dir, "par ent", "miniforge3");
    const r = run("conda-dir.sh", [d]);
    expect(r.status).toBe(0);
    expect(r.one.get("parent")).toBe(join(dir, "par ent"));
    expect(r.one.get("writable")).toBe("1");
    expect(r.one.get("user")).toBe("root");
    expect(r.one.get("bash")).toBe("1");
    expect(r.one.has("exists")).toBe(false);
    expect(r.one.has("tool")).toBe(false);
  });

  it("an empty one, then one with a conda (the first tool found)", () => {
    const d = join(dir, "c");
    mkdirSync(d);
    const empty = run("conda-dir.sh", [d]);
    expect([empty.one.get("exists"), empty.one.get("empty")]).toEqual(["1", "1"]);
    for (const t of ["bin/mamba", "condabin/conda"]) {
      mkdirSync(join(d, t, ".."), { recursive: true });
      writeFileSync(join(d, t), "#!/bin/sh\n");
      chmodSync(join(d, t), 0o755);
    }
    const full = run("conda-dir.sh", [d]);
    expect(full.one.get("tool")).toBe(join(d, "condabin/conda"));
    expect(full.one.has("empty")).toBe(false);
  });
});

describe("sha256.sh", () => {
  const body = "an installer\n";
  const want = createHash("sha256").update(body).digest("hex");
  it("sha256sum, shasum or python3, whichever the host has; else `none`", () => {
    const f = join(dir, `in staller 'x' $z.sh`);
    writeFileSync(f, body);
    expect(run("sha256.sh", [f]).stdout.split(/\s+/)[0]).toBe(want);
    // the system's interpreter itself (not a shim that needs the rest of PATH)
    const py = bin({ python3: realpathSync("/usr/bin/python3") });
    expect(run("sha256.sh", [f], { PATH: py }).stdout.trim()).toBe(want);
    expect(run("sha256.sh", [f], { PATH: join(dir, "nothing") }).stdout).toBe("none\n");
  });
});
