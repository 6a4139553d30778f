// The uv backend for real (uv from PyPI, in .venv/bin/uv), offline from a wheelhouse: a venv
// with Parsl whose worker starts, a second ensure that is a no-op, signals reaching Python.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandEnv, resolveCommand } from "../../src/env/activation.js";
import { ensureEnv, type EnsureResult } from "../../src/env/ensure.js";
import type { EnvSpec } from "../../src/env/spec.js";
import { LocalHost } from "../../src/ssh/local-host.js";
import {
  cleanupTmp,
  pathWithoutPython,
  rejection,
  tmp,
  UV,
  VENV_PY,
  wheelhouse,
} from "./helpers.js";

afterAll(cleanupTmp);
const host = new LocalHost();
const parslVersion = execFileSync(
  VENV_PY,
  ["-c", "import importlib.metadata as m; print(m.version('parsl'))"],
  { encoding: "utf8" },
).trim();

let wheels = "";
let dir = "";
let spec: EnvSpec;
let first: EnsureResult;
const REQS = `# the workflow's requirements\nparsl==${parslVersion}\n`;

beforeAll(async () => {
  wheels = wheelhouse();
  dir = tmp();
  writeFileSync(join(dir, "requirements.txt"), REQS);
  spec = {
    backend: "uv",
    name: "wf",
    prefix: join(dir, "envs/wf"),
    file: join(dir, "requirements.txt"),
    uv: UV,
    findLinks: [wheels],
    noIndex: true,
  };
  first = await ensureEnv(host, spec);
}, 300_000);

describe("uv backend (real uv, offline wheelhouse)", { timeout: 120_000 }, () => {
  it("creates the venv with Parsl and reports its Python and Parsl versions", () => {
    const python = execFileSync(
      "python3",
      ["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
      { encoding: "utf8" },
    ).trim();
    expect(first).toMatchObject({
      action: "created",
      prefix: spec.prefix,
      python,
      parsl: parslVersion,
      interpreter: `${spec.prefix}/bin/python`,
      tool: { kind: "uv", path: UV, installed: false },
    });
    expect(first.activation.set).toEqual({ VIRTUAL_ENV: spec.prefix });
    expect(first.workerInit).toBe(
      `export PATH=${spec.prefix}/bin:"$PATH"; export VIRTUAL_ENV=${spec.prefix}; unset PYTHONHOME`,
    );
    const record = JSON.parse(
      readFileSync(join(spec.prefix!, "parsl-sidecar.json"), "utf8"),
    ) as Record<string, unknown>;
    expect(record).toMatchObject({ hash: first.hash, backend: "uv", python, parsl: parslVersion });
    expect(readFileSync(spec.file, "utf8")).toBe(REQS);
  });

  it("a Parsl worker starts inside the environment (process_worker_pool.py --help, parsl imports)", () => {
    const env = commandEnv(first.activation, {
      PATH: "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/root",
    });
    const help = execFileSync("process_worker_pool.py", ["--help"], { env, encoding: "utf8" });
    expect(help).toContain("usage: process_worker_pool.py");
    expect(help).toContain("--cert_dir");
    const where = execFileSync(
      "python",
      ["-c", "import parsl, sys; print(sys.prefix, parsl.__version__)"],
      { env, encoding: "utf8" },
    ).trim();
    expect(where).toBe(`${spec.prefix} ${parslVersion}`);
    // the worker's own entry point, by the interpreter's absolute path
    const [cmd, ...args] = resolveCommand(
      ["python", "-m", "parsl.executors.high_throughput.process_worker_pool", "--help"],
      first.activation,
    );
    expect(cmd).toBe(`${spec.prefix}/bin/python`);
    expect(execFileSync(cmd!, args, { env, encoding: "utf8" })).toContain("--cert_dir");
  });

  it("the second ensure with unchanged requirements is a no-op (hash), and the file is untouched", async () => {
    const again = await ensureEnv(host, spec);
    expect(again).toMatchObject({
      action: "unchanged",
      hash: first.hash,
      tool: null,
      python: first.python,
      parsl: parslVersion,
      waited: false,
    });
    expect(readFileSync(spec.file, "utf8")).toBe(REQS);
  });

  it("a changed requirements file updates the venv in place", async () => {
    const other = join(dir, "req2.txt");
    writeFileSync(other, `${REQS}tblib\n`);
    const s2 = { ...spec, file: other };
    const res = await ensureEnv(host, s2);
    expect(res.action).toBe("updated");
    expect(res.hash).not.toBe(first.hash);
    expect((await ensureEnv(host, s2)).action).toBe("unchanged");
    // back to the first file: different hash again, so uv runs again
    expect((await ensureEnv(host, spec)).action).toBe("updated");
  });

  it("SIGTERM reaches a Python started with the activation (interpreter run directly, no wrapper)", async () => {
    const env = commandEnv(first.activation);
    const code =
      "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM', sys.prefix, flush=True), sys.exit(7)))\nprint('ready', flush=True)\ntime.sleep(60)";
    for (const argv of [
      resolveCommand(["python", "-c", code], first.activation),
      ["sh", "-c", `${first.workerInit}; exec python -c "$0"`, code],
    ]) {
      const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      let sent = false;
      child.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        if (out.includes("ready") && !sent) {
          sent = true;
          child.kill("SIGTERM");
        }
      });
      const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
      expect(out).toContain(`got SIGTERM ${spec.prefix}`);
      expect(code).toBe(7);
    }
  });

  it("a pyproject.toml works the same way", async () => {
    const p = join(dir, "proj");
    mkdirSync(p);
    writeFileSync(
      join(p, "pyproject.toml"),
      `[project]\nname = "wf"\nversion = "0.1"\ndependencies = ["tblib"]\n`,
    );
    const res = await ensureEnv(host, {
      ...spec,
      prefix: join(dir, "envs/proj"),
      file: join(p, "pyproject.toml"),
    });
    expect(res.action).toBe("created");
    expect(
      execFileSync(res.interpreter, ["-c", "import tblib; print('ok')"], {
        encoding: "utf8",
      }).trim(),
    ).toBe("ok");
  });

  it("a host without python3 is a clear ENV_NOT_FOUND, and nothing is created", async () => {
    const bin = pathWithoutPython(dir);
    const prefix = join(dir, "envs/nopy");
    const err = await rejection(ensureEnv(host, { ...spec, prefix }, { hostEnv: { PATH: bin } }));
    expect(err.code).toBe("ENV_NOT_FOUND");
    expect(err.message).toBe(
      `No python3 on local (PATH=${bin}): the uv backend makes its environment from the host's Python. Install Python 3.10+ there, set UV_PYTHON to an interpreter, or use the conda backend with INSTALL_CONDA=true`,
    );
    expect(existsSync(prefix)).toBe(false);
  });

  it("no uv and INSTALL_UV false: ENV_NOT_FOUND saying how to get uv", async () => {
    const err = await rejection(
      ensureEnv(host, { ...spec, uv: undefined, prefix: join(dir, "envs/nouv") } as EnvSpec, {
        hostEnv: { PATH: "/usr/bin:/bin" },
      }),
    );
    expect(err.code).toBe("ENV_NOT_FOUND");
    expect(err.message).toContain(
      "No uv on local (PATH=/usr/bin:/bin). Install it (pip install uv), give its path (UV_PATH), or set INSTALL_UV=true",
    );
  });

  it("INSTALL_UV bootstraps uv with pip into ~/.cache/parsl-sidecar/uv (here a private HOME)", async () => {
    const home = join(dir, "home");
    mkdirSync(home);
    const s = {
      ...spec,
      uv: undefined,
      installUv: true,
      prefix: join(dir, "envs/boot"),
    } as EnvSpec;
    const hostEnv = {
      HOME: home,
      PATH: "/usr/bin:/bin",
      PIP_FIND_LINKS: wheels,
      PIP_NO_INDEX: "1",
    };
    const res = await ensureEnv(host, s, { hostEnv });
    expect(res.tool).toEqual({
      kind: "uv",
      path: join(home, ".cache/parsl-sidecar/uv/bin/uv"),
      installed: true,
    });
    expect(res.parsl).toBe(parslVersion);
    expect((await ensureEnv(host, s, { hostEnv })).action).toBe("unchanged");
  });

  it("refuses a prefix that holds something else", async () => {
    const prefix = join(dir, "occupied");
    mkdirSync(prefix);
    writeFileSync(join(prefix, "data.csv"), "1,2\n");
    const err = await rejection(ensureEnv(host, { ...spec, prefix }));
    expect(err.message).toContain("is not a virtual environment; refusing to touch it");
  });
});
