import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pidAlive } from "../../src/rpc/connection-file.js";

const MAIN = resolve(import.meta.dirname, "../../dist/bin/parsl-sidecar.js");
let dir: string;

function cli(args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, [MAIN, ...args], {
    reject: false,
    timeout: 60_000,
    env: { PARSL_SIDECAR_RUNTIME_DIR: dir, PARSL_SIDECAR_CONNECTION_FILE: "", ...env },
  });
}

beforeAll(() => {
  if (!existsSync(MAIN))
    throw new Error(`${MAIN} is missing: run \`bash scripts/setup.sh\` (it builds dist/)`);
  dir = mkdtempSync(join(tmpdir(), "psc-cli-"));
});
afterAll(async () => {
  await cli(["stop"]);
  rmSync(dir, { recursive: true, force: true });
});

describe("parsl-sidecar CLI", () => {
  it("prints help for the program and each command", async () => {
    const top = await cli(["--help"]);
    expect(top.exitCode).toBe(0);
    for (const c of ["serve", "status", "call", "stop", "run"]) expect(top.stdout).toContain(c);
    const serve = await cli(["serve", "--help"]);
    expect(serve.exitCode).toBe(0);
    expect(serve.stdout).toContain("--detach");
  });

  it("exits 2 on an unknown option", async () => {
    const r = await cli(["status", "--bogus"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("--bogus");
  });

  it("exits 2 on a log level it does not know, naming the value and the choices, and starts nothing", async () => {
    for (const args of [
      ["serve", "--log-level", "loud"],
      ["run", "--log-level", "loud", "--", "true"],
    ]) {
      const r = await cli(args);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toContain("'loud' is invalid");
      expect(r.stderr).toContain("trace, debug, info, warn, error, fatal, silent");
    }
    expect(
      readdirSync(dir).filter((f) => f.startsWith("sidecar.") || f.startsWith("run-")),
    ).toEqual([]);
  });

  it("exits 3 from status when no sidecar is running, saying how to start one", async () => {
    const r = await cli(["status"]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain("parsl-sidecar serve --detach");
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("serves detached, answers status and call, and stops", async () => {
    const up = await cli(["serve", "--detach"]);
    expect(up.exitCode, up.stderr).toBe(0);
    const file = up.stdout.trim();
    expect(file).toBe(join(dir, "sidecar.json"));

    const status = await cli(["status", "--json"]);
    expect(status.exitCode, status.stderr).toBe(0);
    const s = JSON.parse(status.stdout) as { pid: number; connection_file: string };
    expect(s.connection_file).toBe(file);
    expect(pidAlive(s.pid)).toBe(true);

    const human = await cli(["status"]);
    expect(human.stdout).toContain(`sidecar pid ${s.pid}`);

    const ping = await cli(["call", "sidecar.ping"]);
    expect(ping.exitCode).toBe(0);
    expect(JSON.parse(ping.stdout)).toMatchObject({ pong: true });

    const echo = await cli(["call", "sidecar.echo", '{"value": [1, "a"], "progress_steps": 2}']);
    expect(JSON.parse(echo.stdout)).toEqual({ value: [1, "a"] });
    expect(echo.stderr).toContain('progress {"step":1,"of":2}');

    const bad = await cli(["call", "sidecar.echo", "{not json"]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain("Expected params to be a JSON object");

    const arr = await cli(["call", "sidecar.echo", "[1]"]);
    expect(arr.exitCode).toBe(2);

    const invalid = await cli(["call", "sidecar.echo", '{"delay_ms": "x"}']);
    expect(invalid.exitCode).toBe(1);
    expect(invalid.stderr).toContain("params.delay_ms");

    const again = await cli(["serve", "--detach"]);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain("already running");

    const stop = await cli(["stop", "--json"]);
    expect(stop.exitCode, stop.stderr).toBe(0);
    expect(JSON.parse(stop.stdout)).toEqual({ stopped: true, pid: s.pid });
    expect(pidAlive(s.pid)).toBe(false);
    expect(existsSync(file)).toBe(false);
  });

  it("a reader that goes away (| head) ends no command: no EPIPE, the command's own exit code", async () => {
    const sh = (line: string) =>
      execa("bash", ["-c", `${line}; echo "status=\${PIPESTATUS[0]}" >&2`], {
        reject: false,
        timeout: 60_000,
        env: { PARSL_SIDECAR_RUNTIME_DIR: dir, PARSL_SIDECAR_CONNECTION_FILE: "" },
      });
    const node = `${JSON.stringify(process.execPath)} ${JSON.stringify(MAIN)}`;
    expect((await cli(["serve", "--detach"])).exitCode).toBe(0);
    try {
      // sidecar.describe prints ~100 KiB: more than a pipe holds, so the write meets the closed end
      const r = await sh(`${node} call sidecar.describe | head -c 10 >/dev/null`);
      expect(r.stderr).not.toContain("EPIPE");
      expect(r.stderr).toContain("status=0");
    } finally {
      expect((await cli(["stop"])).exitCode).toBe(0);
    }
    // run still tears down and passes COMMAND's code when its summary cannot be printed
    const run = await sh(
      `${node} run --json -- ${JSON.stringify(process.execPath)} -e "setTimeout(() => process.exit(3), 300)" | true`,
    );
    expect(run.stderr).not.toContain("EPIPE");
    expect(run.stderr).toContain("status=3");
    expect(readdirSync(dir).filter((f) => f.startsWith("run-"))).toEqual([]);
  });

  it("run passes the child's exit code and removes its sidecar", async () => {
    const script =
      "const fs=require('fs');const f=process.env.PARSL_SIDECAR_CONNECTION_FILE;if(!fs.existsSync(f))process.exit(9);process.exit(3)";
    const r = await cli(["run", "--", process.execPath, "-e", script]);
    expect(r.exitCode, r.stderr).toBe(3);
    expect(readdirSync(dir).filter((f) => f.startsWith("run-"))).toEqual([]);
  });

  it("run gives 128+15 when the child is killed by SIGTERM", async () => {
    const r = await cli([
      "run",
      "--",
      process.execPath,
      "-e",
      "process.kill(process.pid, 'SIGTERM')",
    ]);
    expect(r.exitCode).toBe(143);
  });

  it("run gives 127 for a command that does not exist", async () => {
    const r = await cli(["run", "--", "parsl-sidecar-no-such-command"]);
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toContain("command not found: parsl-sidecar-no-such-command");
  });

  it("run --json prints a summary", async () => {
    const r = await cli(["run", "--json", "--", process.execPath, "-e", "process.exit(0)"]);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout.trim().split("\n").at(-1)!)).toMatchObject({
      exit_code: 0,
      signal: null,
    });
  });
});
