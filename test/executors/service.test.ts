// The executors service against a real sshd: worker blocks (process groups started, tracked,
// killed; a dropped connection, a block ending while detached, a cancel while the pool refuses
// connections), preflight (versions, directories, unreachable pools), completion of a `local`
// pool and the all-or-nothing rule, release by owner.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isSidecarError } from "../../src/errors.js";
import { EventBus } from "../../src/events.js";
import { resolveExecutor } from "../../src/executors/resolve.js";
import { ExecutorsService } from "../../src/executors/service.js";
import { SshConnections } from "../../src/ssh/connections.js";
import { createLogger } from "../../src/util/logger.js";
import { localVersions } from "../../src/executors/versions.js";
import { stopAllAfterAll } from "../testbed/hooks.js";
import type { SshdOptions } from "../testbed/sshd.js";
import { eventually, sshSetup, token, type SshSetup } from "../ssh/helpers.js";

stopAllAfterAll();

/** A block's files on the loopback pool (its HOME is this user's). */
const leftOnPool = (id: string): string[] =>
  readdirSync(join(homedir(), ".parsl-sidecar", "blocks")).filter((f) => f.startsWith(`${id}.`));

const venvPython = resolve(".venv/bin/python");

/** An sshd, a pool on it and an executors service over that pool, with a scratch directory. */
async function serviceBed(
  sshd?: SshdOptions,
): Promise<{ s: SshSetup; svc: ExecutorsService; dir: string }> {
  const s = await sshSetup(sshd ? { sshd } : {});
  const dir = mkdtempSync(join(tmpdir(), "psc-exec-svc-"));
  const svc = new ExecutorsService({
    hosts: s.pool,
    tunnels: undefined,
    log: createLogger(),
    events: new EventBus(),
    sweepMs: 200,
  });
  return { s, svc, dir };
}

async function stopServiceBed(b: { s?: SshSetup; svc?: ExecutorsService; dir?: string }) {
  await b.svc?.close();
  await b.s?.pool.close();
  await b.s?.sshd.stop();
  if (b.dir) rmSync(b.dir, { recursive: true, force: true });
}

describe("ExecutorsService", () => {
  let s: SshSetup;
  let svc: ExecutorsService;
  let dir: string;
  let local: { python: string; parsl: string };
  beforeAll(async () => {
    ({ s, svc, dir } = await serviceBed());
    const v = await localVersions(venvPython);
    local = { python: v!.python, parsl: v!.parsl! };
  }, 60_000);
  afterAll(() => stopServiceBed({ s, svc, dir }), 60_000);

  const alive = async (tok: string): Promise<boolean> => {
    const lease = await s.pool.acquire("pool", "test");
    try {
      return (
        (
          await lease.exec(`pgrep -f '^sleep 6${tok}' >/dev/null && echo yes || echo no`)
        ).stdout.trim() === "yes"
      );
    } finally {
      lease.release();
    }
  };

  it("starts a block in its own process group, reports it, and kills the whole group", {
    timeout: 60_000,
  }, async () => {
    const tok = token();
    const out = join(dir, "b1.out");
    // a child and a grandchild that would outlive a plain kill of the script
    const b = await svc.blockManager().start({
      target: "pool",
      script: `echo started; (sleep 6${tok} & sleep 6${tok}; wait) & wait`,
      owner: "o1",
      label: "cpu",
      cwd: join(dir, "run"),
      stdout_path: out,
    });
    expect(b.state).toBe("running");
    expect(b.pgid).toBeGreaterThan(1);
    expect(await eventually(() => alive(tok), 10_000)).toBe(true);
    expect(svc.blockManager().status([b.id])[0]!.state).toBe("running");
    expect(await svc.blockManager().cancel([b.id], 2000)).toEqual([true]);
    expect(svc.blockManager().status([b.id])[0]!.state).toBe("cancelled");
    expect(await eventually(async () => !(await alive(tok)), 10_000)).toBe(true);
    expect(readFileSync(out, "utf8")).toBe("started\n");
  });

  it("reports a failed block with its exit code and output tail", { timeout: 60_000 }, async () => {
    const b = await svc
      .blockManager()
      .start({ target: "pool", script: "echo boom >&2; exit 7", owner: "o2", label: "cpu" });
    expect(
      await eventually(() => svc.blockManager().status([b.id])[0]!.state !== "running", 10_000),
    ).toBe(true);
    const st = svc.blockManager().status([b.id])[0]!;
    expect(st).toMatchObject({ state: "failed", exit_code: 7 });
    expect(st.tail).toContain("boom");
    // the files its shell left on the pool are removed once the sidecar saw the end itself
    expect(await eventually(() => leftOnPool(b.id).length === 0, 15_000)).toBe(true);
    expect(svc.blockManager().status(["nope"])[0]!.state).toBe("failed");
  });

  it("a block that ends while detached by a dropped connection reports how it ended", {
    timeout: 60_000,
  }, async () => {
    const out = join(dir, "b5.out");
    const err = join(dir, "b5.err");
    const b = await svc.blockManager().start({
      target: "pool",
      script: "echo started; sleep 4; echo after the drop; echo err after >&2; exit 7",
      owner: "o5",
      label: "cpu",
      stdout_path: out,
      stderr_path: err,
    });
    expect(
      await eventually(
        () => svc.blockManager().status([b.id])[0]!.tail.includes("started"),
        10_000,
      ),
    ).toBe(true);
    expect(await s.sshd.dropConnections()).toBeGreaterThan(0);
    // the block lives on, detached from its channel
    expect(
      await eventually(
        () => svc.blockManager().status([b.id])[0]!.tail.includes("dropped"),
        10_000,
      ),
    ).toBe(true);
    expect(svc.blockManager().status([b.id])[0]!.state).toBe("running");
    // it ends on its own; a later look over a new connection reads the status its shell left
    expect(
      await eventually(() => svc.blockManager().status([b.id])[0]!.state !== "running", 30_000),
    ).toBe(true);
    const st = svc.blockManager().status([b.id])[0]!;
    expect(st).toMatchObject({ state: "failed", exit_code: 7, signal: null });
    expect(st.tail).toContain("ended while it was detached: exit status 7");
    // what it wrote after the drop, which no channel brought, was read from its files there
    expect(readFileSync(out, "utf8")).toBe("started\nafter the drop\n");
    // (after whatever the pool's login shell printed first: pyenv's rehash on this machine when
    // two logins race for its lock)
    expect(readFileSync(err, "utf8")).toMatch(/(^|\n)err after\n$/);
    expect(st.tail).toContain("after the drop");
    // and nothing of it is left on the pool
    expect(await eventually(() => leftOnPool(b.id).length === 0, 15_000)).toBe(true);
  });

  it("a detached block followed over one channel after another holds one descriptor per file", {
    timeout: 90_000,
  }, async () => {
    const out = join(dir, "b6.out");
    const err = join(dir, "b6.err");
    const b = await svc.blockManager().start({
      target: "pool",
      script:
        "i=0; while [ $i -lt 120 ]; do echo line$i; echo e$i >&2; i=$((i+1)); sleep 0.25; done",
      owner: "o6",
      label: "cpu",
      stdout_path: out,
      stderr_path: err,
    });
    const held = (): number =>
      readdirSync("/proc/self/fd").filter((fd) => {
        try {
          return [out, err].includes(readlinkSync(`/proc/self/fd/${fd}`));
        } catch {
          return false;
        }
      }).length;
    const tail = (): string => svc.blockManager().status([b.id])[0]!.tail;
    expect(await eventually(() => tail().includes("line2"), 10_000)).toBe(true);
    expect(held()).toBe(2);
    // two drops: the block's own channel, then the channel that followed its files
    for (let round = 0; round < 2; round++) {
      expect(await s.sshd.dropConnections()).toBeGreaterThan(0);
      const last = Math.max(...[...tail().matchAll(/line(\d+)/g)].map((m) => Number(m[1])));
      // followed again: lines written after the drop arrive over a new channel
      expect(
        await eventually(() => tail().includes(`line${last + 8}`), 30_000),
        `round ${round}: ${tail()}`,
      ).toBe(true);
    }
    expect(svc.blockManager().status([b.id])[0]!.state).toBe("running");
    // each file open once, by the channel that follows it now
    expect(await eventually(() => held() === 2, 5000)).toBe(true);
    expect(await svc.blockManager().cancel([b.id], 2000)).toEqual([true]);
    expect(await eventually(() => held() === 0, 5000)).toBe(true);
  });

  it("a cancel that cannot reach the pool is reported not done, and lands once the pool answers", {
    timeout: 120_000,
  }, async () => {
    const tok = token();
    const b = await svc.blockManager().start({
      target: "pool",
      script: `echo started; exec sleep 6${tok}`,
      owner: "o6",
      label: "cpu",
    });
    expect(
      await eventually(
        () => svc.blockManager().status([b.id])[0]!.tail.includes("started"),
        10_000,
      ),
    ).toBe(true);
    expect(await s.sshd.dropConnections()).toBeGreaterThan(0);
    expect(
      await eventually(
        () => svc.blockManager().status([b.id])[0]!.tail.includes("dropped"),
        10_000,
      ),
    ).toBe(true);
    const here = (): boolean => spawnSync("pgrep", ["-f", `^sleep 6${tok}`]).status === 0;
    expect(here()).toBe(true);
    // the pool refuses connections (its sshd is down; the block, no longer under it, lives on)
    await s.sshd.pause();
    try {
      // bounded, and not done: the block is still running, and says so
      expect(await svc.blockManager().cancel([b.id], 1000)).toEqual([false]);
      expect(svc.blockManager().status([b.id])[0]!.state).toBe("running");
      expect(here()).toBe(true);
    } finally {
      await s.sshd.resume();
    }
    // once the pool answers, the cancel lands and a later look finds the block gone
    expect(
      await eventually(
        () => svc.blockManager().status([b.id])[0]!.state === "cancelled",
        60_000,
        250,
      ),
    ).toBe(true);
    expect(here()).toBe(false);
  });

  it("a cancel also ends what of the group ignores TERM after the block's shell has gone, here and on a pool", {
    timeout: 60_000,
  }, async () => {
    for (const target of ["pool", "local"]) {
      const tok = token();
      // the shell ends at the TERM; the script's process ignores it and would live on
      const b = await svc.blockManager().start({
        target,
        script: `echo started; trap '' TERM; exec sleep 6${tok}`,
        owner: "o7",
        label: "cpu",
      });
      expect(
        await eventually(
          () => svc.blockManager().status([b.id])[0]!.tail.includes("started"),
          10_000,
        ),
      ).toBe(true);
      const here = (): boolean => spawnSync("pgrep", ["-f", `^sleep 6${tok}`]).status === 0;
      expect(here()).toBe(true);
      expect(await svc.blockManager().cancel([b.id], 1000)).toEqual([true]);
      // done means gone: nothing of the group is left when the cancel returns
      expect(here(), `the block on ${target} left its TERM-ignoring process running`).toBe(false);
      expect(svc.blockManager().status([b.id])[0]!.state).toBe("cancelled");
    }
  });

  it("a cancel whose signals never reached the pool is sent again by a later look", {
    timeout: 120_000,
  }, async () => {
    // a pool whose commands wait only 1.5 s for a connection: the cancel's signals give up while
    // the pool refuses connections, and nothing queued is left to deliver them later
    const pool = new SshConnections({
      configPath: s.configPath,
      events: new EventBus(),
      reconnect: { initialMs: 50, maxMs: 1000 },
      waitReadyMs: 1500,
    });
    const svc2 = new ExecutorsService({
      hosts: pool,
      tunnels: undefined,
      log: createLogger(),
      events: new EventBus(),
      sweepMs: 200,
    });
    const tok = token();
    const here = (): boolean => spawnSync("pgrep", ["-f", `^sleep 6${tok}`]).status === 0;
    try {
      const b = await svc2.blockManager().start({
        target: "pool",
        script: `echo started; exec sleep 6${tok}`,
        owner: "o8",
        label: "cpu",
      });
      expect(
        await eventually(
          () => svc2.blockManager().status([b.id])[0]!.tail.includes("started"),
          10_000,
        ),
      ).toBe(true);
      expect(await s.sshd.dropConnections()).toBeGreaterThan(0);
      expect(
        await eventually(
          () => svc2.blockManager().status([b.id])[0]!.tail.includes("dropped"),
          10_000,
        ),
      ).toBe(true);
      await s.sshd.pause();
      try {
        expect(await svc2.blockManager().cancel([b.id], 1000)).toEqual([false]);
        // longer than any of its signal commands waits for a connection
        await new Promise((r) => setTimeout(r, 2000));
      } finally {
        await s.sshd.resume();
      }
      expect(here()).toBe(true);
      expect(svc2.blockManager().status([b.id])[0]!.state).toBe("running");
      // a look finds it alive though cancelled, and signals it again; the next finds it gone
      expect(
        await eventually(
          () => svc2.blockManager().status([b.id])[0]!.state === "cancelled",
          40_000,
          250,
        ),
      ).toBe(true);
      expect(here()).toBe(false);
    } finally {
      await svc2.close();
      await pool.close();
      if (here()) spawnSync("pkill", ["-f", `^sleep 6${tok}`]);
    }
  });

  it("releases an owner's blocks, also when the owner's process is gone", {
    timeout: 60_000,
  }, async () => {
    const tok = token();
    const b = await svc.startBlock(
      { target: "pool", script: `sleep 6${tok}`, owner: "o3", label: "cpu" },
      999_999_99,
    );
    expect(b.state).toBe("running");
    // the sweeper sees pid 99999999 is not running and releases o3
    expect(
      await eventually(() => svc.blockManager().status([b.id])[0]!.state === "cancelled", 15_000),
    ).toBe(true);
    expect(await alive(tok)).toBe(false);
  });

  it("preflight passes for a matching pool and names versions, dirs and tunnel problems", {
    timeout: 120_000,
  }, async () => {
    const ok = resolveExecutor("cpu", {
      SSH_TARGET: "pool",
      PYTHON: venvPython,
      RUN_DIR: join(dir, "ok"),
    });
    const [good] = await svc.preflight([ok], local);
    // not completed: no tunnel yet; everything else passes
    expect(good!.checks.map((c) => [c.name, c.ok])).toEqual([
      ["reachable", true],
      ["versions", true],
      ["directories", true],
      ["tunnel", false],
      ["scheduler", true],
    ]);
    expect(good!.python).toBe(local.python);

    const skew = resolveExecutor("old", {
      SSH_TARGET: "pool",
      PYTHON: venvPython,
      RUN_DIR: "/proc/nope",
    });
    const [bad] = await svc.preflight([skew], { python: "3.99.1", parsl: "1999.01.01" });
    const byName = Object.fromEntries(bad!.checks.map((c) => [c.name, c]));
    expect(byName.versions!.code).toBe("VERSION_SKEW");
    expect(byName.versions!.message).toContain("Executor `old`");
    expect(byName.versions!.message).toContain(`Python ${local.python} there vs 3.99.1 here`);
    expect(byName.versions!.message).toContain(`Parsl ${local.parsl} there vs 1999.01.01 here`);
    expect(byName.directories!.ok).toBe(false);
    expect(byName.directories!.message).toContain("/proc/nope");
    expect(byName.tunnel!.code).toBe("TUNNEL_NOT_FOUND");

    const missing = resolveExecutor("nopy", {
      SSH_TARGET: "pool",
      PYTHON: "/no/such/python",
      RUN_DIR: join(dir, "ok"),
    });
    const [np] = await svc.preflight([missing], local);
    expect(np!.checks.find((c) => c.name === "versions")!.message).toContain(
      "cannot run `/no/such/python`",
    );
  });

  it("preflight and completion name an unreachable pool; completion closes nothing it did not open", {
    timeout: 120_000,
  }, async () => {
    const gone = resolveExecutor("gone", {
      SSH_TARGET: "root@127.0.0.1:1",
      RUN_DIR: join(dir, "g"),
    });
    const [r] = await svc.preflight([gone], local);
    expect(r!.checks).toHaveLength(1);
    expect(r!.checks[0]!).toMatchObject({ name: "reachable", ok: false, code: "POOL_UNREACHABLE" });
    expect(r!.checks[0]!.message).toContain(
      "Executor `gone`: pool `root@127.0.0.1:1` is unreachable",
    );
    try {
      await svc.complete(
        {
          json: { here: { SSH_TARGET: "local" }, gone: { SSH_TARGET: "root@127.0.0.1:1" } },
          file: "x.json",
          reuse: true,
        },
        "o4",
      );
      expect.unreachable();
    } catch (err) {
      expect(isSidecarError(err, "POOL_UNREACHABLE")).toBe(true);
      expect((err as Error).message).toContain(
        "Executor `gone`: cannot reach pool `root@127.0.0.1:1`",
      );
    }
  });

  it("completes a local pool without a tunnel", { timeout: 60_000 }, async () => {
    const res = await svc.complete(
      {
        json: { here: { SSH_TARGET: "local", CORES_PER_WORKER: 2, MINE: "kept" } },
        file: "x.json",
        reuse: true,
      },
      "o5",
    );
    const e = res.executors.here as Record<string, unknown>;
    expect(e).toMatchObject({
      SSH_TARGET: "local",
      CORES_PER_WORKER: 2,
      MINE: "kept",
      HOST_IP: "127.0.0.1",
      DIAL_ADDRESS: "127.0.0.1",
    });
    expect(e.WORKER_PORT).toBe(e.INTERCHANGE_PORT);
    expect(e.TUNNEL_ID).toBeUndefined();
    expect(Object.keys(e).slice(0, 3)).toEqual(["SSH_TARGET", "CORES_PER_WORKER", "MINE"]);
  });

  it("needs a tunnels service for a remote pool", { timeout: 60_000 }, async () => {
    await expect(
      svc.complete({ json: { cpu: { SSH_TARGET: "pool" } }, file: "x.json", reuse: true }, "o6"),
    ).rejects.toThrow(/Executor `cpu`: this sidecar has no tunnels service/);
  });
});

describe("ExecutorsService on a pool whose login prints before every command", () => {
  // sshd's ForceCommand stands in for rc files that print on stderr (a module system, a motd)
  const motd = "motd: welcome to the pool";
  let s: SshSetup;
  let svc: ExecutorsService;
  let dir: string;
  beforeAll(async () => {
    ({ s, svc, dir } = await serviceBed({
      extraConfig: [`ForceCommand printf '%s\\n' '${motd}' >&2; eval "$SSH_ORIGINAL_COMMAND"`],
    }));
  }, 60_000);
  afterAll(() => stopServiceBed({ s, svc, dir }), 60_000);

  it("a detached block loses none of its stderr, which has those lines once", {
    timeout: 60_000,
  }, async () => {
    const err = join(dir, "m.err");
    const b = await svc.blockManager().start({
      target: "pool",
      script: "echo started; sleep 4; echo err after >&2; exit 3",
      owner: "m1",
      label: "cpu",
      stdout_path: join(dir, "m.out"),
      stderr_path: err,
    });
    const st = () => svc.blockManager().status([b.id])[0]!;
    expect(await eventually(() => st().tail.includes("started"), 10_000)).toBe(true);
    expect(await s.sshd.dropConnections()).toBeGreaterThan(0);
    expect(await eventually(() => st().state !== "running", 30_000)).toBe(true);
    expect(st()).toMatchObject({ state: "failed", exit_code: 3 });
    // followed and read again over new sessions, each of which printed the line first: the
    // offsets into its files on the pool count the block's own bytes, not the login's
    const text = readFileSync(err, "utf8");
    expect(text.split(motd).length - 1).toBe(1);
    expect(text).toMatch(new RegExp(`${motd}\\n(.*\\n)*err after\\n$`));
    expect(st().tail).toContain("err after");
  });
});
