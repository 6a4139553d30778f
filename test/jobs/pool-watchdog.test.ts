/**
 * The pool watchdog on the `local` pool (the same script runs over SSH): it cleans up on `kill`,
 * when its stdin ends (the sidecar died) and when heartbeats stop (the network is gone), and it
 * cancels all scheduler jobs of a pool in one call.
 */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LocalHost } from "../../src/ssh/local-host.js";
import { cleanupOnHost, PoolWatchdog } from "../../src/jobs/pool-watchdog.js";
import { alive, FIXTURES, jobProcesses, pidsFrom, reap, type Sandbox, sandbox, waitFor } from "./helpers.js";

let box: Sandbox | undefined;
const started: number[] = [];
const watchdogs: PoolWatchdog[] = [];
afterEach(async () => {
  for (const w of watchdogs.splice(0)) await w.stop().catch(() => undefined);
  reap(started.splice(0));
  box?.cleanup();
  box = undefined;
});

/** Start the stand-in worker pool in its own session; resolves with its pgid and pids. */
async function startWorkers(b: Sandbox, job: string): Promise<{ pgid: number; pids: number[] }> {
  const pidFile = join(b.dir, `workers-${job}`);
  const child = spawn("setsid", [join(FIXTURES, "pool-worker.sh"), pidFile, job], { stdio: ["ignore", "pipe", "ignore"], detached: true });
  child.unref();
  const pgid = await new Promise<number>((res) => child.stdout.once("data", (d: Buffer) => res(Number(String(d).trim()))));
  await waitFor("three worker pids", () => pidsFrom(pidFile).length >= 3);
  const pids = pidsFrom(pidFile);
  started.push(...pids);
  return { pgid, pids };
}

/** What the pool sees when the sidecar's process or its connection goes away: the watchdog's stdin ends. */
function endStdin(wd: PoolWatchdog): void {
  (wd as unknown as { proc: { stdin: NodeJS.WritableStream } }).proc.stdin.end();
}

describe("pool watchdog", () => {
  it("kills the job's process groups and marked daemons on `kill`", { timeout: 30_000 }, async () => {
    box = sandbox();
    const { pgid, pids } = await startWorkers(box, "wd-kill");
    const wd = await PoolWatchdog.start(new LocalHost(), "wd-kill", { run: "t1", boundS: 30, graceMs: 1000 });
    watchdogs.push(wd);
    wd.add({ kind: "remote_group", target: "local", pgid });
    const report = await wd.kill(300);
    expect(report).toMatchObject({ target: "local", groups: 1, left: 0 });
    expect(report.error).toBeUndefined();
    expect(pids.filter(alive)).toEqual([]);
    expect(jobProcesses("wd-kill")).toEqual([]);
  });

  it("cleans up by itself once its stdin ended (the sidecar died) and the bound passed", { timeout: 30_000 }, async () => {
    box = sandbox();
    const { pgid, pids } = await startWorkers(box, "wd-eof");
    const wd = await PoolWatchdog.start(new LocalHost(), "wd-eof", { run: "t1", boundS: 2, graceMs: 0 });
    wd.add({ kind: "remote_group", target: "local", pgid });
    // what the pool sees when the sidecar's process or connection goes away
    endStdin(wd);
    await waitFor("the workers to be gone", () => pids.every((p) => !alive(p)), 20_000);
    expect(jobProcesses("wd-eof")).toEqual([]);
  });

  it("a new instance (after a reconnect) takes over: the old one exits without cleaning up", { timeout: 40_000 }, async () => {
    box = sandbox();
    const { pgid, pids } = await startWorkers(box, "wd-take");
    const first = await PoolWatchdog.start(new LocalHost(), "wd-take", { run: "t1", boundS: 2, graceMs: 0 });
    first.add({ kind: "remote_group", target: "local", pgid });
    endStdin(first);
    const second = await PoolWatchdog.start(new LocalHost(), "wd-take", { run: "t1", boundS: 2, graceMs: 0, heartbeatS: 0.5 });
    watchdogs.push(second);
    await first.ended$;
    await new Promise((r) => setTimeout(r, 5000));
    expect(pids.every(alive)).toBe(true);
    // the second knows the first's groups without being told again
    expect(await second.kill(0)).toMatchObject({ groups: 1, left: 0 });
    expect(pids.filter(alive)).toEqual([]);
  });

  it("cleans up by itself when heartbeats stop for the bound (the network is gone)", { timeout: 30_000 }, async () => {
    box = sandbox();
    const { pgid, pids } = await startWorkers(box, "wd-hb");
    const wd = await PoolWatchdog.start(new LocalHost(), "wd-hb", { run: "t1", boundS: 2, graceMs: 0, heartbeatS: 3600 });
    watchdogs.push(wd);
    wd.add({ kind: "remote_group", target: "local", pgid });
    await new Promise((r) => setTimeout(r, 1000));
    expect(pids.every(alive)).toBe(true);
    // bound 2 s, checked every 2 s, plus the kill: well within 10 s
    await waitFor("the workers to be gone", () => pids.every((p) => !alive(p)), 10_000);
  });

  it("a heartbeat keeps it waiting", { timeout: 30_000 }, async () => {
    box = sandbox();
    const { pgid, pids } = await startWorkers(box, "wd-alive");
    const wd = await PoolWatchdog.start(new LocalHost(), "wd-alive", { run: "t1", boundS: 2, graceMs: 0, heartbeatS: 0.5 });
    watchdogs.push(wd);
    wd.add({ kind: "remote_group", target: "local", pgid });
    await new Promise((r) => setTimeout(r, 5000));
    expect(pids.every(alive)).toBe(true);
    expect((await wd.kill(0)).left).toBe(0);
  });

  it("cancels a pool's scheduler jobs in one scancel and one qdel", { timeout: 30_000 }, async () => {
    box = sandbox();
    const bin = join(box.dir, "bin");
    mkdirSync(bin);
    for (const name of ["scancel", "qdel"]) symlinkSync(join(FIXTURES, "fake-scheduler.sh"), join(bin, name));
    const log = join(box.dir, "scheduler.log");
    const env = { PATH: `${bin}:${process.env.PATH}`, FAKE_SCHEDULER_LOG: log };
    const wd = await PoolWatchdog.start(new LocalHost(), "wd-sched", { run: "t1", boundS: 30, graceMs: 0, env });
    watchdogs.push(wd);
    for (const id of ["101", "102", "103"]) wd.add({ kind: "scheduler_job", target: "local", scheduler: "slurm", id });
    wd.add({ kind: "scheduler_job", target: "local", scheduler: "pbspro", id: "7.server" });
    wd.remove({ kind: "scheduler_job", target: "local", scheduler: "slurm", id: "102" });
    const report = await wd.kill(0);
    expect(report).toMatchObject({ slurm: 2, pbspro: 1 });
    expect(readFileSync(log, "utf8").trim().split("\n").sort()).toEqual(["qdel 7.server", "scancel 101 103"]);
  });

  it("cleans up from a record over one exec when no watchdog runs", { timeout: 30_000 }, async () => {
    box = sandbox();
    const { pgid, pids } = await startWorkers(box, "wd-once");
    const report = await cleanupOnHost(new LocalHost(), "wd-once", "t1", [{ kind: "remote_group", target: "local", pgid }], 200);
    expect(report).toMatchObject({ groups: 1, left: 0 });
    expect(pids.filter(alive)).toEqual([]);
  });
});
