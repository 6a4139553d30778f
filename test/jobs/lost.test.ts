/**
 * The sidecar dies in the middle of a run (SIGKILL): the pool's watchdog cleans up the job's
 * workers there by itself, and the next `jobs` marks the job lost and cleans up what is left here.
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
  pidsFrom,
  reap,
  type Sandbox,
  sandbox,
  startCli,
  startStubborn,
  waitFor,
} from "./helpers.js";

let box: Sandbox | undefined;
const started: number[] = [];
afterEach(() => {
  reap(started.splice(0));
  box?.cleanup();
  box = undefined;
});

async function startJobWithPool(b: Sandbox, job: string) {
  const poolPids = join(b.dir, `pool-${job}`);
  const cmdPids = join(b.dir, `cmd-${job}`);
  const run = startCli(
    [
      "run",
      "--job",
      job,
      "--grace",
      "200ms",
      "--",
      join(FIXTURES, "job-with-pool.sh"),
      poolPids,
      cmdPids,
    ],
    b.env,
  );
  await waitFor("the job and its pool workers", () => existsSync(`${cmdPids}.ready`), 30_000);
  const pool = pidsFrom(poolPids);
  const cmd = pidsFrom(cmdPids);
  started.push(...pool, ...cmd);
  expect(pool).toHaveLength(3);
  expect([...pool, ...cmd].every(alive)).toBe(true);
  return { run, pool, cmd };
}

describe("a sidecar that dies", () => {
  it("SIGKILL: the pool's watchdog stops the job's processes there within its bound; `jobs` then marks the job lost", {
    timeout: 60_000,
  }, async () => {
    box = sandbox({ PARSL_SIDECAR_WATCHDOG_S: "2" });
    const { run, pool, cmd } = await startJobWithPool(box, "lost-kill");
    const rec = new JobStore(box.env.PARSL_SIDECAR_STATE_DIR!).read("lost-kill");
    expect(rec.resources).toEqual([
      expect.objectContaining({ kind: "remote_group", target: "local", label: "workers" }),
    ]);
    expect(rec.pools).toEqual(["local"]);

    run.child.kill("SIGKILL");
    await run.done;
    // the watchdog sees its stdin end when the sidecar's process (or SSH connection) goes away and
    // cleans up when no new instance took over within the bound (2 s + one 2 s check + grace);
    // on the `local` pool, COMMAND's processes carry the job's marker too, so they go as well
    await waitFor("the pool's workers to be gone", () => pool.every((p) => !alive(p)), 15_000);
    await waitFor("COMMAND's processes to be gone", () => cmd.every((p) => !alive(p)), 10_000);
    expect(jobProcesses("lost-kill")).toEqual([]);

    const listed = await cli(["jobs", "--json"], box.env);
    expect(listed.code).toBe(0);
    const job = JSON.parse(listed.stdout).jobs.find((j: { id: string }) => j.id === "lost-kill");
    expect(job).toMatchObject({ state: "lost", live: false });
    expect(job.reason).toMatch(/sidecar \(pid \d+\) ended without closing the job/);
  });

  it("SIGKILL without pools: the next `jobs` marks the job lost and stops everything it left here", {
    timeout: 60_000,
  }, async () => {
    box = sandbox();
    const { run, pids } = await startStubborn(box, "orphan", started);
    await new Promise((r) => setTimeout(r, 700)); // let the tracker record the tree once
    run.child.kill("SIGKILL");
    await run.exited;
    expect(pids.every(alive)).toBe(true);
    const listed = await cli(["jobs"], box.env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^orphan\s+lost\s/m);
    expect(pids.filter(alive)).toEqual([]);
    expect(jobProcesses("orphan")).toEqual([]);
    const rec = new JobStore(box.env.PARSL_SIDECAR_STATE_DIR!).read("orphan");
    expect(rec.cleanup).toMatchObject({ local_left: 0 });
    expect(rec.cleanup!.local_signalled).toBeGreaterThanOrEqual(7);
  });

  it("frozen (no heartbeat, connection open): the watchdog cleans up within its bound", {
    timeout: 60_000,
  }, async () => {
    box = sandbox({ PARSL_SIDECAR_WATCHDOG_S: "2" });
    const { run, pool } = await startJobWithPool(box, "lost-stop");
    run.child.kill("SIGSTOP");
    try {
      // bound 2 s + one 2 s check + grace 200 ms: within 10 s
      await waitFor("the pool's workers to be gone", () => pool.every((p) => !alive(p)), 10_000);
    } finally {
      run.child.kill("SIGKILL");
      await run.done;
    }
    const killed = await cli(["kill", "lost-stop", "--grace", "0"], box.env);
    expect(killed.code).toBe(0);
    expect(killed.stdout).toMatch(/job lost-stop lost/);
    expect(jobProcesses("lost-stop")).toEqual([]);
  });

  it("a normal kill of a job with a pool stops the workers through the watchdog", {
    timeout: 60_000,
  }, async () => {
    box = sandbox();
    const { run, pool, cmd } = await startJobWithPool(box, "pool-kill");
    const killed = await cli(["kill", "pool-kill", "--grace", "200ms", "--json"], box.env);
    expect(killed.code).toBe(0);
    const out = JSON.parse(killed.stdout);
    expect(out).toMatchObject({ state: "killed", cleanup: { local_left: 0, errors: [] } });
    expect(out.cleanup.remote).toEqual([
      expect.objectContaining({ target: "local", groups: 1, left: 0 }),
    ]);
    expect((await run.done).code).toBe(137);
    expect([...pool, ...cmd].filter(alive)).toEqual([]);
    expect(jobProcesses("pool-kill")).toEqual([]);
  });
});
