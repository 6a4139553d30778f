/**
 * `run` + `kill` with real processes: a command that spawns grandchildren, daemonizes (setsid,
 * double fork), hides from the job marker and ignores SIGTERM; after `kill` nothing of it remains.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { JobStore } from "../../src/jobs/record.js";
import {
  alive,
  cli,
  FIXTURES,
  jobProcesses,
  reap,
  type Sandbox,
  sandbox,
  startStubborn,
} from "./helpers.js";

let box: Sandbox | undefined;
const started: number[] = [];
afterEach(() => {
  reap(started.splice(0));
  box?.cleanup();
  box = undefined;
});

async function runAndKill(b: Sandbox, n: number, grace: string): Promise<void> {
  const job = `stubborn-${n}`;
  const { run, pids, pidFile } = await startStubborn(b, job, started, [], join(b.dir, `pids-${n}`));
  expect(pids).toHaveLength(7);
  expect(pids.every(alive)).toBe(true);

  const listed = await cli(["jobs", "--json"], b.env);
  const entry = JSON.parse(listed.stdout).jobs.find((j: { id: string }) => j.id === job);
  expect(entry).toMatchObject({
    state: "running",
    live: true,
    command: [join(FIXTURES, "stubborn-tree.sh"), pidFile],
  });

  const killed = await cli(["kill", job, "--grace", grace], b.env);
  expect(killed.stderr).toBe("");
  expect(killed.code).toBe(0);
  expect(killed.stdout).toMatch(new RegExp(`job ${job} killed \\(exit code 137\\)`));
  const ran = await run.done;
  expect(ran.code).toBe(137); // it ignored SIGTERM, so SIGKILL ended it: 128 + 9
  expect(pids.filter(alive)).toEqual([]);
  expect(jobProcesses(job)).toEqual([]);
  const rec = new JobStore(b.env.PARSL_SIDECAR_STATE_DIR!).read(job);
  expect(rec).toMatchObject({
    state: "killed",
    exit_code: 137,
    reason: "stopped by parsl-sidecar kill",
  });
  expect(rec.cleanup?.local_left).toBe(0);
}

describe("kill", () => {
  it("leaves no process of a job behind: grandchildren, setsid and double-forked daemons, SIGTERM ignored", {
    timeout: 60_000,
  }, async () => {
    box = sandbox();
    await runAndKill(box, 0, "1s");
    // the sidecar `run` started is gone with its private runtime directory
    expect(existsSync(join(box.dir, "run", `run-${0}`))).toBe(false);
  });

  it("does so 20 times in a row", { timeout: 300_000 }, async () => {
    box = sandbox();
    for (let i = 1; i <= 20; i++) await runAndKill(box, i, "200ms");
  });

  it("works from the record alone when the job's sidecar cannot be asked", {
    timeout: 60_000,
  }, async () => {
    box = sandbox();
    const { run, pids } = await startStubborn(box, "norpc", started);
    // hide the sidecar: kill must fall back to acting from the record
    const store = new JobStore(box.env.PARSL_SIDECAR_STATE_DIR!);
    store.update(
      "norpc",
      (r) => (r.sidecar = { pid: r.sidecar!.pid, connection_file: join(box!.dir, "missing.json") }),
    );
    const killed = await cli(["kill", "norpc", "--grace", "300ms", "--json"], box.env);
    expect(killed.code).toBe(0);
    expect(JSON.parse(killed.stdout)).toMatchObject({ job: "norpc", state: "killed" });
    expect((await run.done).code).toBe(137);
    expect(pids.filter(alive)).toEqual([]);
    expect(jobProcesses("norpc")).toEqual([]);
  });

  it("a signal to run stops COMMAND's group and, after the grace period, whatever ignored it", {
    timeout: 60_000,
  }, async () => {
    box = sandbox();
    const { run, pids } = await startStubborn(box, "sig", started, ["--grace", "300ms"]);
    run.child.kill("SIGTERM");
    const ran = await run.done;
    expect(ran.code).toBe(137);
    expect(pids.filter(alive)).toEqual([]);
    expect(new JobStore(box.env.PARSL_SIDECAR_STATE_DIR!).read("sig")).toMatchObject({
      state: "killed",
      reason: "parsl-sidecar run received SIGTERM",
    });
  });
});
