// src/remote/jobs/watchdog.sh run directly with `sh` (no sshd, no sidecar): its stdin protocol,
// reaping a registered group, a marked process in a group of its own, a group whose marker does
// not match (left alone), cleanup when the heartbeats stop, and `stop` (no cleanup).
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { alive } from "../../testbed/procs.js";
import { REMOTE, waitUntil } from "../helpers.js";

const WATCHDOG = join(REMOTE, "jobs", "watchdog.sh");

let home: string;
const pids: number[] = [];
const watchdogs: ChildProcessWithoutNullStreams[] = [];

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "psc-wd-"));
});
afterEach(() => {
  for (const w of watchdogs.splice(0)) w.kill("SIGKILL");
  for (const pid of pids.splice(0)) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  rmSync(home, { recursive: true, force: true });
});

/** A process group of two sleeps, its leader's environment `env` (inherited by both). */
function group(env: Record<string, string>): number {
  const child = spawn("sh", ["-c", "sleep 300 & sleep 300 & wait"], {
    detached: true,
    stdio: "ignore",
    env: { ...process.env, ...env },
  });
  child.unref();
  pids.push(child.pid!);
  return child.pid!;
}

/** The watchdog for `job`, and its stdout lines as they come. */
function watchdog(job: string, boundS: number, graceMs = 1000) {
  const wd = spawn(
    "sh",
    [WATCHDOG, job, String(boundS), String(graceMs), "run1", "pool-0a1b2c3d"],
    {
      env: { ...process.env, HOME: home },
      detached: true,
    },
  );
  watchdogs.push(wd);
  const lines: string[] = [];
  createInterface({ input: wd.stdout }).on("line", (l) => lines.push(l));
  const exited = new Promise<number | string | null>((r) =>
    wd.on("exit", (code, signal) => r(code ?? signal)),
  );
  const line = (prefix: string) =>
    waitUntil(() => lines.find((l) => l.startsWith(prefix)), 30_000, `a '${prefix}' line`);
  const send = (text: string) => wd.stdin.write(`${text}\n`);
  return { wd, lines, line, send, exited };
}

describe("watchdog.sh", () => {
  it("says ready, then on `kill` reaps a registered group and reports it", async () => {
    const pg = group({});
    const w = watchdog("job-a", 30);
    expect(await w.line("ready ")).toMatch(/^ready \d+ \d+$/);
    w.send(`pg ${pg}`);
    w.send("kill 1000");
    const done = await w.line("done ");
    expect(done).toMatch(/^done groups=1 processes=\d+ slurm=0 pbspro=0 left=0$/);
    expect(await w.exited).toBe(0);
    await waitUntil(() => !alive(pg) || undefined, 5000, "the group gone");
    // its state directory is removed after a cleanup
    expect(existsSync(join(home, ".parsl-sidecar", "watchdog", "job-a-run1-pool-0a1b2c3d"))).toBe(
      false,
    );
  });

  it("finds a process of the job by its PARSL_SIDECAR_JOB marker, in a group it never heard of", async () => {
    const pg = group({ PARSL_SIDECAR_JOB: "job-b" });
    const other = group({ PARSL_SIDECAR_JOB: "job-other" });
    const w = watchdog("job-b", 30);
    await w.line("ready ");
    w.send("kill 1000");
    expect(await w.line("done ")).toMatch(/ processes=[1-9]\d* .* left=0$/);
    await waitUntil(() => !alive(pg) || undefined, 5000, "the marked group gone");
    expect(alive(other)).toBe(true);
  });

  it("leaves a group recorded with a marker none of its processes carries", async () => {
    const pg = group({ PARSL_SIDECAR_BLOCK: "blk-real" });
    const w = watchdog("job-c", 30);
    await w.line("ready ");
    w.send(`pg ${pg} PARSL_SIDECAR_BLOCK=blk-other`);
    w.send("kill 500");
    expect(await w.line("done ")).toBe("done groups=0 processes=0 slurm=0 pbspro=0 left=0");
    expect(alive(pg)).toBe(true);
  });

  it("cleans up on its own once its stdin ends and no heartbeat comes within the bound", async () => {
    const pg = group({ PARSL_SIDECAR_JOB: "job-d" });
    const w = watchdog("job-d", 1, 500);
    await w.line("ready ");
    w.wd.stdin.end();
    await waitUntil(() => !alive(pg) || undefined, 20_000, "the job's group gone");
    // it leads its own process group here, and ends it (itself included) once done
    expect(await w.exited).toBe("SIGKILL");
  });

  it("`stop` exits without touching the job", async () => {
    const pg = group({ PARSL_SIDECAR_JOB: "job-e" });
    const w = watchdog("job-e", 30);
    await w.line("ready ");
    w.send(`pg ${pg}`);
    w.send("stop");
    expect(await w.line("stopped")).toBe("stopped");
    expect(await w.exited).toBe(0);
    expect(alive(pg)).toBe(true);
  });
});
