/**
 * The pool watchdog on the `local` pool (the same script runs over SSH): it cleans up on `kill`,
 * when its stdin ends (the sidecar died) and when heartbeats stop (the network is gone), and it
 * cancels all scheduler jobs of a pool in one call.
 */
import { spawn } from "node:child_process";
import {
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
} from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { shellQuote } from "../../src/ssh/host.js";
import { LocalHost } from "../../src/ssh/local-host.js";
import { cleanupOnHost, PoolWatchdog } from "../../src/jobs/pool-watchdog.js";
import {
  alive,
  FIXTURES,
  jobProcesses,
  pidsFrom,
  reap,
  type Sandbox,
  sandbox,
  waitFor,
} from "./helpers.js";

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
  const child = spawn("setsid", [join(FIXTURES, "pool-worker.sh"), pidFile, job], {
    stdio: ["ignore", "pipe", "ignore"],
    detached: true,
  });
  child.unref();
  const pgid = await new Promise<number>((res) =>
    child.stdout.once("data", (d: Buffer) => res(Number(String(d).trim()))),
  );
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
  it("kills the job's process groups and marked daemons on `kill`", {
    timeout: 30_000,
  }, async () => {
    box = sandbox();
    const { pgid, pids } = await startWorkers(box, "wd-kill");
    const wd = await PoolWatchdog.start(new LocalHost(), "wd-kill", {
      run: "t1",
      boundS: 30,
      graceMs: 1000,
    });
    watchdogs.push(wd);
    wd.add({ kind: "remote_group", target: "local", pgid });
    const report = await wd.kill(300);
    expect(report).toMatchObject({ target: "local", groups: 1, left: 0 });
    expect(report.error).toBeUndefined();
    expect(pids.filter(alive)).toEqual([]);
    expect(jobProcesses("wd-kill")).toEqual([]);
  });

  it("cleans up by itself once its stdin ended (the sidecar died) and the bound passed", {
    timeout: 30_000,
  }, async () => {
    box = sandbox();
    const { pgid, pids } = await startWorkers(box, "wd-eof");
    const wd = await PoolWatchdog.start(new LocalHost(), "wd-eof", {
      run: "t1",
      boundS: 2,
      graceMs: 0,
    });
    wd.add({ kind: "remote_group", target: "local", pgid });
    // what the pool sees when the sidecar's process or connection goes away
    endStdin(wd);
    await waitFor("the workers to be gone", () => pids.every((p) => !alive(p)), 20_000);
    expect(jobProcesses("wd-eof")).toEqual([]);
  });

  it("a new instance (after a reconnect) takes over: the old one exits without cleaning up", {
    timeout: 40_000,
  }, async () => {
    box = sandbox();
    const { pgid, pids } = await startWorkers(box, "wd-take");
    const first = await PoolWatchdog.start(new LocalHost(), "wd-take", {
      run: "t1",
      boundS: 2,
      graceMs: 0,
    });
    first.add({ kind: "remote_group", target: "local", pgid });
    endStdin(first);
    const second = await PoolWatchdog.start(new LocalHost(), "wd-take", {
      run: "t1",
      boundS: 2,
      graceMs: 0,
      heartbeatS: 0.5,
    });
    watchdogs.push(second);
    await first.ended$;
    await new Promise((r) => setTimeout(r, 5000));
    expect(pids.every(alive)).toBe(true);
    // the second knows the first's groups without being told again
    expect(await second.kill(0)).toMatchObject({ groups: 1, left: 0 });
    expect(pids.filter(alive)).toEqual([]);
  });

  it("cleans up by itself when heartbeats stop for the bound (the network is gone)", {
    timeout: 30_000,
  }, async () => {
    box = sandbox();
    const { pgid, pids } = await startWorkers(box, "wd-hb");
    const wd = await PoolWatchdog.start(new LocalHost(), "wd-hb", {
      run: "t1",
      boundS: 2,
      graceMs: 0,
      heartbeatS: 3600,
    });
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
    const wd = await PoolWatchdog.start(new LocalHost(), "wd-alive", {
      run: "t1",
      boundS: 2,
      graceMs: 0,
      heartbeatS: 0.5,
    });
    watchdogs.push(wd);
    wd.add({ kind: "remote_group", target: "local", pgid });
    await new Promise((r) => setTimeout(r, 5000));
    expect(pids.every(alive)).toBe(true);
    expect((await wd.kill(0)).left).toBe(0);
  });

  it("cancels a pool's scheduler jobs in one scancel and one qdel", {
    timeout: 30_000,
  }, async () => {
    box = sandbox();
    const bin = join(box.dir, "bin");
    mkdirSync(bin);
    for (const name of ["scancel", "qdel"])
      symlinkSync(join(FIXTURES, "fake-scheduler.sh"), join(bin, name));
    const log = join(box.dir, "scheduler.log");
    const env = { PATH: `${bin}:${process.env.PATH}`, FAKE_SCHEDULER_LOG: log };
    const wd = await PoolWatchdog.start(new LocalHost(), "wd-sched", {
      run: "t1",
      boundS: 30,
      graceMs: 0,
      env,
    });
    watchdogs.push(wd);
    for (const id of ["101", "102", "103"])
      wd.add({ kind: "scheduler_job", target: "local", scheduler: "slurm", id });
    wd.add({ kind: "scheduler_job", target: "local", scheduler: "pbspro", id: "7.server" });
    wd.remove({ kind: "scheduler_job", target: "local", scheduler: "slurm", id: "102" });
    const report = await wd.kill(0);
    expect(report).toMatchObject({ slurm: 2, pbspro: 1 });
    expect(readFileSync(log, "utf8").trim().split("\n").sort()).toEqual([
      "qdel 7.server",
      "scancel 101 103",
    ]);
  });

  it("two pools of one job on hosts that share a home directory keep a watchdog each", {
    timeout: 40_000,
  }, async () => {
    // two executors on one cluster: two targets, one $HOME. A shared state directory made each
    // new instance take the other pool's over, and the one taken over exited: in turn, forever
    box = sandbox();
    const named = (target: string): LocalHost =>
      Object.defineProperty(new LocalHost(), "target", { value: target });
    const a = await startWorkers(box, "wd-two");
    const b = await startWorkers(box, "wd-two");
    const wa = await PoolWatchdog.start(named("pool_a"), "wd-two", {
      run: "t1",
      boundS: 30,
      graceMs: 0,
      heartbeatS: 0.5,
    });
    const wb = await PoolWatchdog.start(named("pool_b"), "wd-two", {
      run: "t1",
      boundS: 30,
      graceMs: 0,
      heartbeatS: 0.5,
    });
    watchdogs.push(wa, wb);
    wa.add({ kind: "remote_group", target: "pool_a", pgid: a.pgid });
    wb.add({ kind: "remote_group", target: "pool_b", pgid: b.pgid });
    // longer than two of their checks (every 2 s) for a newer instance
    await new Promise((r) => setTimeout(r, 5000));
    expect([wa.alive, wb.alive]).toEqual([true, true]);
    // each knows its own pool's groups only
    expect(await wa.kill(0)).toMatchObject({ target: "pool_a", groups: 1, left: 0 });
    expect(wb.alive).toBe(true);
    expect(await wb.kill(0)).toMatchObject({ target: "pool_b", groups: 1, left: 0 });
    expect([...a.pids, ...b.pids].filter(alive)).toEqual([]);

    // the clean-up from a record, for both pools at once, reports for each
    const c = await startWorkers(box, "wd-two-rec");
    const d = await startWorkers(box, "wd-two-rec");
    const reports = await Promise.all([
      cleanupOnHost(
        named("pool_a"),
        "wd-two-rec",
        "t1",
        [{ kind: "remote_group", target: "pool_a", pgid: c.pgid }],
        200,
      ),
      cleanupOnHost(
        named("pool_b"),
        "wd-two-rec",
        "t1",
        [{ kind: "remote_group", target: "pool_b", pgid: d.pgid }],
        200,
      ),
    ]);
    expect(reports.map((r) => r.survivors)).toEqual([undefined, undefined]);
    expect(reports).toMatchObject([
      { groups: 1, left: 0 },
      { groups: 1, left: 0 },
    ]);
    expect(reports.map((r) => r.error)).toEqual([undefined, undefined]);
    expect([...c.pids, ...d.pids].filter(alive)).toEqual([]);
  });

  it("removes state directories untouched for over a week, and keeps the others", {
    timeout: 30_000,
  }, async () => {
    box = sandbox();
    const base = join(homedir(), ".parsl-sidecar", "watchdog");
    mkdirSync(base, { recursive: true });
    const stale = join(base, `wd-stale-${process.pid}-t0`);
    const recent = join(base, `wd-recent-${process.pid}-t0`);
    for (const d of [stale, recent]) mkdirSync(join(d, "cleaning"), { recursive: true });
    const old = new Date(Date.now() - 8 * 86_400_000);
    utimesSync(stale, old, old);
    const twoDays = new Date(Date.now() - 2 * 86_400_000);
    utimesSync(recent, twoDays, twoDays);
    try {
      const wd = await PoolWatchdog.start(new LocalHost(), "wd-sweep", {
        run: "t1",
        boundS: 30,
        graceMs: 0,
      });
      watchdogs.push(wd);
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(recent)).toBe(true);
    } finally {
      rmSync(stale, { recursive: true, force: true });
      rmSync(recent, { recursive: true, force: true });
    }
  });

  it("signals a recorded group only while a process of it carries its marker: the same pgid on another login node is left alone", {
    timeout: 30_000,
  }, async () => {
    box = sandbox();
    const group = (env: Record<string, string>): number => {
      // detached: its own session and group, pgid = pid; it ignores TERM, as a stubborn worker does
      const c = spawn("sh", ["-c", "trap '' TERM; sleep 300 & wait"], {
        detached: true,
        stdio: "ignore",
        env: { ...process.env, ...env },
      });
      c.unref();
      started.push(c.pid!);
      return c.pid!;
    };
    const ours = group({ PARSL_SIDECAR_BLOCK: "b-ours" });
    // recorded by a job whose pool name led to another login node: here that pgid is someone else's
    const foreign = group({});
    const legacy = group({ PARSL_SIDECAR_BLOCK: "b-old" });
    await waitFor("three groups", () => [ours, foreign, legacy].every(alive));
    const report = await cleanupOnHost(
      new LocalHost(),
      "wd-mark",
      "t1",
      [
        { kind: "remote_group", target: "local", pgid: ours, mark: "PARSL_SIDECAR_BLOCK=b-ours" },
        {
          kind: "remote_group",
          target: "local",
          pgid: foreign,
          mark: "PARSL_SIDECAR_BLOCK=b-elsewhere",
        },
        // recorded before groups carried a marker: signalled as before
        { kind: "remote_group", target: "local", pgid: legacy },
      ],
      300,
    );
    expect(report).toMatchObject({ groups: 2, left: 0 });
    expect(alive(ours)).toBe(false);
    expect(alive(legacy)).toBe(false);
    expect(alive(foreign)).toBe(true);
    // and a live watchdog told about the groups (pg PGID MARK, unpg PGID MARK) does the same
    const ours2 = group({ PARSL_SIDECAR_BLOCK: "b-ours2" });
    const gone = group({ PARSL_SIDECAR_BLOCK: "b-gone" });
    await waitFor("two more groups", () => [ours2, gone].every(alive));
    const wd = await PoolWatchdog.start(new LocalHost(), "wd-mark2", {
      run: "t1",
      boundS: 30,
      graceMs: 300,
    });
    watchdogs.push(wd);
    wd.add({
      kind: "remote_group",
      target: "local",
      pgid: ours2,
      mark: "PARSL_SIDECAR_BLOCK=b-ours2",
    });
    wd.add({
      kind: "remote_group",
      target: "local",
      pgid: foreign,
      mark: "PARSL_SIDECAR_BLOCK=b-elsewhere",
    });
    wd.add({
      kind: "remote_group",
      target: "local",
      pgid: gone,
      mark: "PARSL_SIDECAR_BLOCK=b-gone",
    });
    wd.remove({
      kind: "remote_group",
      target: "local",
      pgid: gone,
      mark: "PARSL_SIDECAR_BLOCK=b-gone",
    });
    expect(await wd.kill(300)).toMatchObject({ groups: 1, left: 0 });
    expect(alive(ours2)).toBe(false);
    expect(alive(foreign)).toBe(true);
    expect(alive(gone)).toBe(true); // removed from the watchdog before the kill
  });

  it("names the processes it could not stop (pid, command, state, group)", {
    timeout: 30_000,
  }, async (ctx) => {
    if (process.getuid?.() !== 0) {
      console.warn(
        "SKIPPED: naming survivors needs root (the watchdog runs as nobody beside a root-owned group)",
      );
      ctx.skip();
    }
    box = sandbox();
    // a group the watchdog may not signal: owned by root, while the watchdog runs as nobody
    const c = spawn("sh", ["-c", "sleep 300 & wait"], { detached: true, stdio: "ignore" });
    c.unref();
    started.push(c.pid!);
    await waitFor("the group", () => alive(c.pid!));
    // the sandbox is private to root: nobody's HOME lives beside it, and goes with it
    const home = `${box.dir}-nobody`;
    mkdirSync(home);
    chownSync(home, 65534, 65534);
    const cleanup = box.cleanup;
    box.cleanup = () => {
      cleanup();
      rmSync(home, { recursive: true, force: true });
    };
    const inner = new LocalHost();
    const asNobody = Object.assign(Object.create(inner) as LocalHost, {
      exec: (cmd: string, o: Parameters<LocalHost["exec"]>[1]) =>
        inner.exec(
          `HOME=${home} exec setpriv --reuid=65534 --regid=65534 --clear-groups sh -c ${shellQuote(cmd)}`,
          o,
        ),
    });
    const report = await cleanupOnHost(
      asNobody,
      "wd-stuck",
      "t1",
      [{ kind: "remote_group", target: "local", pgid: c.pid! }],
      0,
    );
    expect(report.error).toBeUndefined();
    expect(report).toMatchObject({ groups: 1, left: 2 });
    const who = report.survivors ?? [];
    expect(who).toHaveLength(2);
    expect(who).toContain(`${c.pid!}:sh:S:${c.pid!}`);
    expect(who.filter((w) => w.endsWith(`:sleep:S:${c.pid!}`))).toHaveLength(1);
    expect(alive(c.pid!)).toBe(true);
  });

  it("cleans up from a record over one exec when no watchdog runs", {
    timeout: 30_000,
  }, async () => {
    box = sandbox();
    const { pgid, pids } = await startWorkers(box, "wd-once");
    const report = await cleanupOnHost(
      new LocalHost(),
      "wd-once",
      "t1",
      [{ kind: "remote_group", target: "local", pgid }],
      200,
    );
    expect(report).toMatchObject({ groups: 1, left: 0 });
    expect(pids.filter(alive)).toEqual([]);
  });
});
