/** `run --env` and `run --executors`: environments ensured and executors completed before COMMAND starts. */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cli, ROOT, type Sandbox, sandbox } from "./helpers.js";

const UV = join(ROOT, ".venv", "bin", "uv");
let box: Sandbox | undefined;
afterEach(() => {
  box?.cleanup();
  box = undefined;
});

describe.skipIf(!existsSync(UV))("run --env", () => {
  it("ensures a uv environment from a local.conf and runs `python` as its interpreter", {
    timeout: 180_000,
  }, async () => {
    box = sandbox();
    const prefix = join(box.dir, "envs", "wf");
    writeFileSync(join(box.dir, "requirements.txt"), "# no packages: the environment alone\n");
    writeFileSync(
      join(box.dir, "local.conf"),
      `ENV_BACKEND=uv\nLOCAL_REQUIREMENTS=requirements.txt\nENV_PREFIX=${prefix}\nUV_PATH=${UV}\n`,
    );
    const r = await cli(
      [
        "run",
        "--job",
        "in-env",
        "--env",
        join(box.dir, "local.conf"),
        "--",
        "python",
        "-c",
        "import os, sys; print(sys.prefix, os.environ['VIRTUAL_ENV'], os.environ['PARSL_SIDECAR_JOB'])",
      ],
      box.env,
    );
    expect(r.stderr).not.toMatch(/failed/);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`${prefix} ${prefix} in-env`);
  });

  it("with --connection, ensures it through the running sidecar's env.ensure and activates it for COMMAND", {
    timeout: 180_000,
  }, async () => {
    box = sandbox();
    const prefix = join(box.dir, "envs", "wf2");
    writeFileSync(join(box.dir, "requirements.txt"), "# no packages: the environment alone\n");
    writeFileSync(
      join(box.dir, "local.conf"),
      `ENV_BACKEND=uv\nLOCAL_REQUIREMENTS=requirements.txt\nENV_PREFIX=${prefix}\nUV_PATH=${UV}\n`,
    );
    expect((await cli(["serve", "--detach"], box.env)).code).toBe(0);
    const conn = join(box.env.PARSL_SIDECAR_RUNTIME_DIR!, "sidecar.json");
    try {
      const r = await cli(
        [
          "run",
          "--connection",
          conn,
          "--env",
          join(box.dir, "local.conf"),
          "--",
          "python",
          "-c",
          "import sys; print(sys.prefix)",
        ],
        box.env,
      );
      expect(r.stderr).not.toMatch(/failed|needs/);
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(prefix);
      // the sidecar did the work: it reports the environment as current
      const d = await cli(
        [
          "call",
          "env.describe",
          JSON.stringify({ conf: join(box.dir, "local.conf") }),
          "--connection",
          conn,
          "--json",
        ],
        box.env,
      );
      expect(d.stdout).toMatch(/"state":\s*"current"/);
    } finally {
      await cli(["stop", "--connection", conn], box.env);
    }
  });

  it("a broken environment fails the job before COMMAND starts (exit 1)", {
    timeout: 60_000,
  }, async () => {
    box = sandbox();
    writeFileSync(join(box.dir, "env.yml"), "dependencies: [\n");
    writeFileSync(
      join(box.dir, "local.conf"),
      `CONDA_ENV=wf\nLOCAL_CONDA_YAML=env.yml\nCONDA_DIR=${join(box.dir, "conda")}\n`,
    );
    const marker = join(box.dir, "ran");
    const r = await cli(
      [
        "run",
        "--job",
        "bad-env",
        "--json",
        "--env",
        join(box.dir, "local.conf"),
        "--",
        "touch",
        marker,
      ],
      box.env,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/parsl-sidecar: env: .*env\.yml:\d+/);
    expect(existsSync(marker)).toBe(false);
    expect(JSON.parse(r.stdout)).toMatchObject({ job: "bad-env", state: "failed", exit_code: 1 });
  });
});

describe("run --executors", () => {
  it("completes the file before COMMAND starts and gives COMMAND the completed copy", {
    timeout: 60_000,
  }, async () => {
    box = sandbox();
    const file = join(box.dir, "executors.json");
    writeFileSync(file, JSON.stringify({ here: { SSH_TARGET: "local", CORES_PER_WORKER: 1 } }));
    const r = await cli(
      [
        "run",
        "--job",
        "with-exec",
        "--executors",
        file,
        "--",
        "sh",
        "-c",
        'cat "$PARSL_SIDECAR_EXECUTORS"',
      ],
      box.env,
    );
    expect(r.code).toBe(0);
    const done = JSON.parse(r.stdout) as { here: Record<string, unknown> };
    expect(done.here).toMatchObject({ SSH_TARGET: "local", CORES_PER_WORKER: 1 });
    expect(Object.keys(done.here).length).toBeGreaterThan(2);
  });

  it("--no-complete passes the file as it is", { timeout: 60_000 }, async () => {
    box = sandbox();
    const file = join(box.dir, "executors.json");
    writeFileSync(file, "{}");
    const r = await cli(
      [
        "run",
        "--executors",
        file,
        "--no-complete",
        "--",
        "sh",
        "-c",
        'echo "$PARSL_SIDECAR_EXECUTORS"',
      ],
      box.env,
    );
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(file);
  });

  it("an executors file that does not parse fails the job before COMMAND starts", {
    timeout: 60_000,
  }, async () => {
    box = sandbox();
    const file = join(box.dir, "executors.json");
    writeFileSync(file, "{ nope");
    const r = await cli(["run", "--executors", file, "--", "true"], box.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/parsl-sidecar: executors: .*executors\.json/);
  });
});
