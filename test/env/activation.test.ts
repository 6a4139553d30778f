// Activation computed without `conda activate`: variables, PATH order, worker_init, command resolution.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { activationFor, commandEnv, resolveCommand, workerInit } from "../../src/env/activation.js";

describe("activation", () => {
  const conda = activationFor({
    backend: "conda",
    prefix: "/opt/c/envs/my env",
    name: "my env",
    condaExe: "/opt/c/bin/conda",
    scripts: ["/opt/c/envs/my env/etc/conda/activate.d/x.sh"],
  });

  it("sets the conda variables and puts <prefix>/bin first on PATH, once", () => {
    const env = commandEnv(conda, {
      PATH: "/usr/bin:/opt/c/envs/my env/bin:/bin",
      PYTHONHOME: "/bad",
      VIRTUAL_ENV: "/old/venv",
      KEEP: "1",
    });
    expect(env).toEqual({
      PATH: "/opt/c/envs/my env/bin:/usr/bin:/bin",
      CONDA_PREFIX: "/opt/c/envs/my env",
      CONDA_DEFAULT_ENV: "my env",
      CONDA_SHLVL: "1",
      CONDA_EXE: "/opt/c/bin/conda",
      KEEP: "1",
    });
  });

  it("uv sets VIRTUAL_ENV", () => {
    const uv = activationFor({ backend: "uv", prefix: "/home/u/.parsl-sidecar/envs/wf" });
    expect(commandEnv(uv, { PATH: "/bin" })).toEqual({
      PATH: "/home/u/.parsl-sidecar/envs/wf/bin:/bin",
      VIRTUAL_ENV: "/home/u/.parsl-sidecar/envs/wf",
    });
    expect(uv.interpreter).toBe("/home/u/.parsl-sidecar/envs/wf/bin/python");
  });

  it("python/python3 become the interpreter's absolute path; other commands stay", () => {
    expect(resolveCommand(["python", "main.py", "-v"], conda)).toEqual([
      "/opt/c/envs/my env/bin/python",
      "main.py",
      "-v",
    ]);
    expect(resolveCommand(["python3"], conda)).toEqual(["/opt/c/envs/my env/bin/python"]);
    expect(resolveCommand(["bash", "run.sh"], conda)).toEqual(["bash", "run.sh"]);
  });

  it("worker_init is valid sh that exports the same variables and sources activate.d scripts", () => {
    const init = workerInit(conda);
    expect(init).toBe(
      "export PATH='/opt/c/envs/my env/bin':\"$PATH\"; export CONDA_PREFIX='/opt/c/envs/my env'; export CONDA_DEFAULT_ENV='my env'; export CONDA_SHLVL=1; export CONDA_EXE=/opt/c/bin/conda; unset PYTHONHOME; . '/opt/c/envs/my env/etc/conda/activate.d/x.sh'",
    );
    const noScripts = workerInit({ ...conda, scripts: [] });
    const out = execFileSync(
      "sh",
      [
        "-c",
        `PYTHONHOME=/x; ${noScripts}; printf '%s|%s|%s|%s' "$PATH" "$CONDA_PREFIX" "$CONDA_DEFAULT_ENV" "\${PYTHONHOME-unset}"`,
      ],
      { encoding: "utf8", env: { PATH: "/usr/bin:/bin" } },
    );
    expect(out).toBe("/opt/c/envs/my env/bin:/usr/bin:/bin|/opt/c/envs/my env|my env|unset");
  });
});
