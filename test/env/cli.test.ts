// `parsl-sidecar env ensure|show` (compiled CLI, in-process and through a sidecar), env.ensure
// over RPC with progress and events, and `run --env local.conf` activating the environment.
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SidecarClient } from "../../src/client/client.js";
import { Daemon } from "../../src/daemon/daemon.js";
import type { SidecarEvent } from "../../src/events.js";
import { cleanupTmp, tmp, UV, VENV_PY, wheelhouse } from "./helpers.js";
import { execFileSync } from "node:child_process";

// the installed executable (the bundle, dist/bin: `env` loads only its own chunk); MAIN is the same file
const BIN = resolve(import.meta.dirname, "../../dist/bin/parsl-sidecar.js");
const MAIN = resolve(import.meta.dirname, "../../dist/bin/parsl-sidecar.js");
let dir = "";
let wheels = "";
let reqs = "";
const parslVersion = execFileSync(
  VENV_PY,
  ["-c", "import importlib.metadata as m; print(m.version('parsl'))"],
  { encoding: "utf8" },
).trim();

function cli(args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, [BIN, ...args], {
    reject: false,
    timeout: 180_000,
    env: { PARSL_SIDECAR_RUNTIME_DIR: join(dir, "rt"), PARSL_SIDECAR_CONNECTION_FILE: "", ...env },
  });
}

beforeAll(() => {
  wheels = wheelhouse();
  dir = tmp("psc-env-cli-");
  reqs = join(dir, "requirements.txt");
  writeFileSync(reqs, `parsl==${parslVersion}\n`);
}, 300_000);
afterAll(cleanupTmp);

describe("env CLI and RPC", { timeout: 180_000 }, () => {
  it("env ensure prints progress on stderr and the result on stdout; the second is unchanged (--json)", async () => {
    const prefix = join(dir, "envs/cli");
    const args = [
      "env",
      "ensure",
      "--file",
      reqs,
      "--prefix",
      prefix,
      "--uv",
      UV,
      "--find-links",
      wheels,
      "--no-index",
    ];
    const first = await cli(args);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toContain(`[local] ${prefix}: create: ${UV} venv --python`);
    expect(first.stderr).toMatch(/\[local\] \S+: install: Installed \d+ packages/);
    expect(first.stdout).toMatch(
      new RegExp(
        `^local: ${prefix} created at ${prefix} \\(uv, [\\d.]+ s\\)\\n  python 3\\.\\d+\\.\\d+, parsl ${parslVersion.replace(/\./g, "\\.")}\\n  interpreter ${prefix}/bin/python\\n  worker_init export PATH=${prefix}/bin:`,
      ),
    );
    const second = await cli([...args, "--json", "--quiet"]);
    expect(second.exitCode).toBe(0);
    expect(second.stderr).toBe("");
    const res = JSON.parse(second.stdout) as { env: Record<string, unknown>; container: null };
    expect(res.env).toMatchObject({
      target: "local",
      action: "unchanged",
      prefix,
      parsl: parslVersion,
      interpreter: `${prefix}/bin/python`,
      tool: null,
      worker_init: expect.stringContaining(`export VIRTUAL_ENV=${prefix}`),
    });
    const show = await cli([
      "env",
      "show",
      "--file",
      reqs,
      "--prefix",
      prefix,
      "--find-links",
      wheels,
      "--no-index",
      "--json",
    ]);
    expect(JSON.parse(show.stdout)).toMatchObject({
      state: "current",
      prefix,
      parsl: parslVersion,
    });
  });

  it("a known error prints its message (no stack) and exits 1", async () => {
    const yaml = join(dir, "bad.yml");
    writeFileSync(yaml, "dependencies:\n  - python\n\t- numpy\n");
    const bad = await cli(["env", "ensure", "--file", yaml, "--name", "ok"]);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr.trim()).toBe(
      `parsl-sidecar: ${yaml}:3:1: the conda environment file is not valid YAML: Tabs are not allowed as indentation`,
    );
    const slash = await cli(["env", "ensure", "--file", yaml, "--name", "a/b", "--json"]);
    expect(slash.exitCode).toBe(1);
    expect(JSON.parse(slash.stdout)).toMatchObject({ error: { code: "ENV_INVALID" } });
    expect(slash.stderr).toContain("Invalid environment name `a/b`");
    const usage = await cli(["env", "ensure", "--file", yaml, "--backend", "pip"]);
    expect(usage.exitCode).toBe(2);
    // the same command through the full program
    const full = await execa(
      process.execPath,
      [MAIN, "env", "ensure", "--file", yaml, "--name", "a/b"],
      { reject: false },
    );
    expect(full.exitCode).toBe(1);
    expect(full.stderr).toContain("Invalid environment name `a/b`");
    const help = await cli(["env", "ensure", "--help"]);
    expect(help.stdout).toContain("--install-conda");
    expect((await cli(["--help"])).stdout).toContain("env ");
  });

  it("env.ensure over RPC: progress messages to the caller, env.progress and env.state events, env.describe", async () => {
    const daemon = await Daemon.start({ runtimeDir: join(dir, "daemon"), stderrLevel: "silent" });
    const client = SidecarClient.connect(daemon.connectionFile);
    try {
      const events: SidecarEvent[] = [];
      const unsubscribe = await client.subscribe(["env"], (e) => events.push(e));
      const progress: Array<Record<string, unknown>> = [];
      const prefix = join(dir, "envs/rpc");
      const params = { file: reqs, prefix, uv: UV, find_links: [wheels], no_index: true };
      const res = await client.call<{ env: Record<string, unknown> }>("env.ensure", params, {
        timeout: 0,
        onProgress: (p) => progress.push(p),
      });
      expect(res.env).toMatchObject({ action: "created", prefix, parsl: parslVersion });
      expect(
        progress.some((p) => p.phase === "install" && String(p.message).startsWith("Installed")),
      ).toBe(true);
      expect(progress.at(-1)).toMatchObject({ target: "local", env: prefix, phase: "done" });
      await new Promise((r) => setTimeout(r, 200));
      expect(events.some((e) => e.topic === "env.progress" && e.data.phase === "install")).toBe(
        true,
      );
      expect(events.find((e) => e.topic === "env.state")?.data).toMatchObject({
        target: "local",
        prefix,
        action: "created",
        parsl: parslVersion,
      });
      const d = await client.call<Record<string, unknown>>("env.describe", params);
      expect(d).toMatchObject({
        state: "current",
        python: res.env.python,
        parsl: parslVersion,
        interpreter: `${prefix}/bin/python`,
      });
      const err = await client
        .call("env.ensure", { ...params, name: "x/y", prefix: undefined })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "ENV_INVALID" });
      const status = await client.call<{ services: Record<string, { ensured: unknown[] }> }>(
        "sidecar.status",
      );
      expect(status.services.env!.ensured).toHaveLength(1);
      await unsubscribe();
    } finally {
      client.close();
      await daemon.close("test done");
    }
  });

  it("run --env local.conf: COMMAND's python is the environment's interpreter, and SIGTERM reaches it", async () => {
    const prefix = join(dir, "envs/run");
    const conf = join(dir, "local.conf");
    writeFileSync(
      conf,
      `# this machine\nENV_BACKEND=uv\nLOCAL_REQUIREMENTS=requirements.txt\nENV_PREFIX="${prefix}"\nUV_PATH=${UV}\n`,
    );
    // uv reads UV_FIND_LINKS / UV_NO_INDEX from its environment: offline installs from the wheelhouse
    const env = { UV_FIND_LINKS: wheels, UV_NO_INDEX: "1" };
    const code =
      "import signal, sys, time, parsl\nsignal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM', flush=True), sys.exit(7)))\nprint('prefix', sys.prefix, parsl.__version__, flush=True)\ntime.sleep(60)";
    const child = execa(
      process.execPath,
      [MAIN, "run", "-q", "--env", "local.conf", "--", "python", "-c", code],
      {
        reject: false,
        cwd: dir,
        timeout: 180_000,
        env: {
          PARSL_SIDECAR_RUNTIME_DIR: join(dir, "rt2"),
          PARSL_SIDECAR_CONNECTION_FILE: "",
          ...env,
        },
      },
    );
    let out = "";
    let sent = false;
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      // the whole line: unbuffered, print() writes its words one by one, and the handler would
      // cut the line it interrupts
      if (/prefix .*\n/.test(out) && !sent) {
        sent = true;
        child.kill("SIGTERM");
      }
    });
    const r = await child;
    expect(out, r.stderr).toContain(`prefix ${prefix} ${parslVersion}`);
    expect(out).toContain("got SIGTERM");
    expect(r.exitCode).toBe(7);
  });
});
