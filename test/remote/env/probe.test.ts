// src/remote/env/probe.sh and versions.py run with `sh`/`python3` (no sshd): the probe's
// key=value lines for a prefix that is missing, empty, something else, a venv (with the
// interpreter's versions and the record) or a conda environment (with CONDA_DIR's tool and
// activate scripts), and the versions program on its own.
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseLines } from "../../../src/env/probe.js";
import { REMOTE } from "../helpers.js";

const PROBE = join(REMOTE, "env", "probe.sh");
const VERSIONS = join(REMOTE, "env", "versions.py");
const VENV_PY = resolve(REMOTE, "../../.venv/bin/python");
const RECORD = ".parsl-sidecar.json";

let home: string;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "psc-remote-probe-"));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

interface ProbeArgs {
  backend: "uv" | "conda";
  name?: string;
  prefix?: string;
  condaDir?: string;
  uv?: string;
  uvBoot?: string;
}

/** The probe's lines, as probe.ts passes its arguments (paths already expanded). */
function probe(a: ProbeArgs) {
  const r = spawnSync(
    "sh",
    [
      PROBE,
      a.backend,
      a.name ?? "",
      a.prefix ?? "",
      a.condaDir ?? "",
      a.uv ?? "",
      a.uvBoot ?? join(home, "uvboot"),
      RECORD,
      readFileSync(VERSIONS, "utf8"),
    ],
    { env: { ...process.env, HOME: home }, encoding: "utf8", timeout: 30_000 },
  );
  expect(r.status, r.stderr).toBe(0);
  return parseLines(r.stdout);
}

describe("probe.sh", () => {
  it("names the host and the prefix's state: missing (a given prefix, or the default)", () => {
    const { one } = probe({ backend: "uv", name: "p1", prefix: join(home, `a b 'c' "d" $e`) });
    expect(one.get("home")).toBe(home);
    expect(one.get("path")).toBe(process.env.PATH);
    expect(one.get("hostname")).toBeTruthy();
    expect(one.get("uname")).toMatch(/^Linux /);
    expect(one.get("flock")).toBe("1");
    expect(one.get("python3")).toMatch(/python3?$/);
    expect(one.get("prefix")).toBe(join(home, `a b 'c' "d" $e`));
    expect(one.get("prefix_state")).toBe("missing");
    expect(one.has("versions")).toBe(false);
    const def = probe({ backend: "uv", name: "p1" }).one;
    expect(def.get("prefix")).toBe(join(home, ".parsl-sidecar/envs/p1"));
  });

  it("empty and other", () => {
    mkdirSync(join(home, "empty"));
    expect(probe({ backend: "uv", prefix: join(home, "empty") }).one.get("prefix_state")).toBe(
      "empty",
    );
    writeFileSync(join(home, "file"), "x");
    expect(probe({ backend: "uv", prefix: join(home, "file") }).one.get("prefix_state")).toBe(
      "other",
    );
  });

  it("a venv: its record, its interpreter's versions, uv from UV_PATH or the bootstrap", () => {
    const pfx = join(home, "venv x");
    mkdirSync(join(pfx, "bin"), { recursive: true });
    writeFileSync(join(pfx, "pyvenv.cfg"), "home = /usr\n");
    // not a link: beside this pyvenv.cfg the interpreter would take the (empty) prefix as its own
    writeFileSync(join(pfx, "bin", "python"), `#!/bin/sh\nexec '${VENV_PY}' "$@"\n`);
    chmodSync(join(pfx, "bin", "python"), 0o755);
    writeFileSync(join(pfx, RECORD), '{"hash": "abc",\n"backend": "uv"}\n');
    const uv = join(home, "uvboot", "bin", "uv");
    mkdirSync(join(uv, ".."), { recursive: true });
    writeFileSync(uv, "#!/bin/sh\n");
    chmodSync(uv, 0o755);
    const { one } = probe({ backend: "uv", prefix: pfx, uv });
    expect(one.get("prefix_state")).toBe("venv");
    expect(one.get("record")).toBe('{"hash": "abc","backend": "uv"}');
    expect(one.get("uv")).toBe(uv);
    const v = JSON.parse(one.get("versions")!) as Record<string, unknown>;
    expect(v.python).toMatch(/^3\.\d+\.\d+$/);
    expect(v.parsl).toMatch(/^\d{4}\./);
    expect(v.executable).toContain("python");
    // a broken interpreter: versions_error with its last lines
    writeFileSync(join(pfx, "bin", "python"), "#!/bin/sh\necho boom >&2\nexit 1\n");
    chmodSync(join(pfx, "bin", "python"), 0o755);
    const broken = probe({ backend: "uv", prefix: pfx }).one;
    expect(broken.get("versions_error")).toBe("boom");
    expect(broken.has("versions")).toBe(false);
  });

  it("a conda environment in CONDA_DIR: the tool there and the activate scripts", () => {
    const condaDir = join(home, "mini forge");
    mkdirSync(join(condaDir, "condabin"), { recursive: true });
    writeFileSync(join(condaDir, "condabin", "conda"), "#!/bin/sh\n");
    chmodSync(join(condaDir, "condabin", "conda"), 0o755);
    const pfx = join(condaDir, "envs", "p2");
    mkdirSync(join(pfx, "conda-meta"), { recursive: true });
    mkdirSync(join(pfx, "etc", "conda", "activate.d"), { recursive: true });
    for (const f of ["a.sh", "b.sh"]) writeFileSync(join(pfx, "etc/conda/activate.d", f), ":\n");
    const { one, all } = probe({ backend: "conda", name: "p2", condaDir });
    expect(one.get("conda_dir")).toBe(condaDir);
    expect(one.get("conda_dir_exists")).toBe("1");
    expect(one.get("conda_dir_tool")).toBe(join(condaDir, "condabin", "conda"));
    expect(one.get("prefix")).toBe(pfx);
    expect(one.get("prefix_state")).toBe("conda");
    expect(all.get("activate_script")).toEqual([
      join(pfx, "etc/conda/activate.d/a.sh"),
      join(pfx, "etc/conda/activate.d/b.sh"),
    ]);
    // a CONDA_DIR that does not exist (yet)
    const none = probe({ backend: "conda", name: "p3", condaDir: join(home, "nope") }).one;
    expect(none.has("conda_dir_exists")).toBe(false);
    expect(none.get("prefix")).toBe(join(home, "nope", "envs", "p3"));
  });
});

describe("versions.py", () => {
  it("reads Parsl's version from a dist-info directory on sys.path", () => {
    const site = join(home, "site");
    mkdirSync(join(site, "parsl-9.8.7.dist-info"), { recursive: true });
    const out = execFileSync("python3", ["-S", VERSIONS], {
      env: { ...process.env, PYTHONPATH: site },
      encoding: "utf8",
    });
    const v = JSON.parse(out) as Record<string, unknown>;
    expect(v.parsl).toBe("9.8.7");
    expect(v.python).toMatch(/^3\.\d+\.\d+$/);
  });

  it("prints null for Parsl where there is none", () => {
    const out = execFileSync("python3", ["-S", "-I", VERSIONS], { encoding: "utf8" });
    expect(JSON.parse(out)).toMatchObject({ parsl: null });
  });
});
