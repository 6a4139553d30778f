// src/remote/executors/versions.py run directly with python3, Python 2.7 (where pyenv has it)
// and the test venv's Python, and through preflight.sh `python` after a WORKER_INIT: one
// `PSC-VERSIONS {json}` line naming the interpreter and Parsl, or why Parsl cannot be imported.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REMOTE } from "../helpers.js";

const VERSIONS = join(REMOTE, "executors", "versions.py");
const PREFLIGHT = join(REMOTE, "executors", "preflight.sh");
const PROGRAM = readFileSync(VERSIONS, "utf8");
const VENV_PYTHON = join(process.cwd(), ".venv", "bin", "python");
const PY3 = spawnSync("python3", ["-c", "import sys; print(sys.executable)"], {
  encoding: "utf8",
}).stdout.trim();
const PY27 = "/root/.pyenv/versions/2.7.18/bin/python";

const scratch = mkdtempSync(join(tmpdir(), "psc-versions-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The probe's JSON, from the one line it prints (nothing else on stdout). */
function probed(stdout: string): Record<string, unknown> {
  const lines = stdout.split("\n").filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^PSC-VERSIONS \{/);
  return JSON.parse(lines[0]!.slice("PSC-VERSIONS ".length)) as Record<string, unknown>;
}

function python(exe: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(exe, args, {
    encoding: "utf8",
    timeout: 30_000,
    env: { ...process.env, ...env },
  });
}

describe("versions.py", () => {
  it("names python3's version and executable, and why Parsl is missing", () => {
    const want = python("python3", ["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"]);
    const r = python("python3", [VERSIONS], { PYTHONPATH: "" });
    expect(r.status).toBe(0);
    const v = probed(r.stdout);
    expect(v.python).toBe(want.stdout.trim());
    expect(v.executable).toMatch(/python3/);
    expect(v.parsl).toBe(null);
    expect(v.parslError).toMatch(/^(ModuleNotFoundError|ImportError): /);
  });

  it("names Parsl's version where it is installed", () => {
    const want = python(VENV_PYTHON, ["-c", "import parsl.version; print(parsl.version.VERSION)"]);
    const v = probed(python(VENV_PYTHON, [VERSIONS]).stdout);
    expect(v.parsl).toBe(want.stdout.trim());
    expect(v.parslError).toBeUndefined();
  });

  it.skipIf(!existsSync(PY27))("answers on Python 2.7", () => {
    const r = python(PY27, [VERSIONS]);
    expect(r.status).toBe(0);
    expect(probed(r.stdout)).toMatchObject({ python: "2.7.18", parsl: null });
  });
});

describe("preflight.sh python", () => {
  /** a package `parsl` that says it is version 9.9.9, found only through PYTHONPATH */
  const fake = join(scratch, "fake");
  mkdirSync(join(fake, "parsl"), { recursive: true });
  writeFileSync(join(fake, "parsl", "__init__.py"), "");
  writeFileSync(join(fake, "parsl", "version.py"), "VERSION = '9.9.9'\n");

  function run(init: string, py = "python3") {
    return spawnSync("sh", [PREFLIGHT, "python", init, py, PROGRAM], {
      encoding: "utf8",
      timeout: 30_000,
      env: { ...process.env, PYTHONPATH: "" },
    });
  }

  it("runs the probe after WORKER_INIT, in the same bash, with no positional parameters", () => {
    const init = `[ $# -eq 0 ] || exit 9\n[[ -n bash ]] && export PYTHONPATH='${fake}'`;
    const r = run(init);
    expect(r.status).toBe(0);
    expect(probed(r.stdout).parsl).toBe("9.9.9");
  });

  it("runs it without a WORKER_INIT, and fails like a worker would on a missing Python", () => {
    expect(probed(run("").stdout).parsl).toBe(null);
    const r = run("", "no-such-python3");
    expect(r.status).toBe(127);
    expect(r.stderr).toMatch(/^bash: .*no-such-python3: command not found/);
  });

  it("takes PYTHON as a command word: a quoted path with a space", () => {
    const dir = join(scratch, "my env");
    mkdirSync(dir, { recursive: true });
    const link = join(dir, "python");
    spawnSync("ln", ["-sf", PY3, link]);
    // the interpreter is found at that path (quoted for the shell as in the executors file)
    expect(probed(run("", `'${link}'`).stdout).executable).toBe(link);
  });
});
