/**
 * Jobs on a pool reached over SSH (a private sshd on loopback): `kill` stops the workers there
 * through the watchdog and closes the job's tunnels on both sides; a SIGKILLed sidecar's workers
 * go by themselves. Repeated to catch races.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { writeSshConfig } from "../testbed/ssh-config.js";
import { startSshd, type Sshd } from "../testbed/sshd.js";
import { entryFor } from "../ssh/helpers.js";
import {
  alive,
  cli,
  CLI,
  FIXTURES,
  jobProcesses,
  pidsFrom,
  reap,
  type Sandbox,
  sandbox,
  startCli,
  waitFor,
} from "./helpers.js";

stopAllAfterAll();

let sshd: Sshd;
let configPath: string;
beforeAll(async () => {
  sshd = await startSshd();
  configPath = writeSshConfig(sshd.dir, [entryFor("pool", sshd)], "client_config");
}, 60_000);
afterAll(async () => {
  await sshd?.stop();
});

let box: Sandbox | undefined;
const started: number[] = [];
afterEach(() => {
  reap(started.splice(0));
  box?.cleanup();
  box = undefined;
});

/** A process's command line, for messages ("" once it is gone). */
function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
  } catch {
    return "";
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** A job with workers on the pool; with `tunnels`, a local forward and a reverse tunnel (through a durable relay there with "durable"). */
async function startJob(
  b: Sandbox,
  job: string,
  tunnels: boolean | "durable" = false,
  workers = true,
) {
  const poolPids = join(b.dir, `pool-${job}`);
  const cmdPids = join(b.dir, `cmd-${job}`);
  const env = {
    ...b.env,
    POOL_TARGET: "pool",
    ...(tunnels ? { TUNNEL_PORT: String(sshd.port) } : {}),
    ...(tunnels === "durable" ? { TUNNEL_DURABLE: "1" } : {}),
    ...(workers ? {} : { POOL_WORKERS: "0" }),
  };
  const run = startCli(
    [
      "run",
      "--job",
      job,
      "--grace",
      "300ms",
      "--",
      join(FIXTURES, "job-with-pool.sh"),
      poolPids,
      cmdPids,
    ],
    env,
  );
  await waitFor(
    "the job and its workers on the pool",
    () => existsSync(`${cmdPids}.ready`),
    30_000,
  );
  const pool = pidsFrom(poolPids);
  const cmd = pidsFrom(cmdPids);
  started.push(...pool, ...cmd);
  expect(pool).toHaveLength(workers ? 3 : 0);
  const ports = tunnels
    ? readFileSync(`${cmdPids}.tunnels`, "utf8").trim().split(" ").map(Number)
    : [];
  return { run, pool, cmd, ports };
}

describe("jobs on an SSH pool (sshd on loopback)", () => {
  it.each([
    ["", true],
    [" (the reverse one durable: its relay goes too)", "durable"],
  ] as const)(
    "kill stops the workers on the pool and closes the job's tunnels on both sides%s",
    { timeout: 90_000 },
    async (_, mode) => {
      box = sandbox({ PARSL_SIDECAR_SSH_CONFIG: configPath });
      const { run, pool, cmd, ports } = await startJob(box, "ssh-kill", mode);
      const [localPort, remotePort, dialPort, relay] = ports as [
        number,
        number,
        number,
        number | undefined,
      ];
      expect(await listening(localPort)).toBe(true); // the local forward, here
      expect(await listening(remotePort)).toBe(true); // the reverse tunnel's listener, on the pool
      expect(await listening(dialPort)).toBe(true); // where workers dial (the relay's, when durable)
      if (mode === "durable") expect(relay && alive(relay)).toBe(true);

      const listed = JSON.parse((await cli(["jobs", "--json"], box.env)).stdout).jobs[0];
      expect(listed.pools).toEqual(["pool"]);
      expect(listed.resources.filter((r: { kind: string }) => r.kind === "tunnel")).toHaveLength(2);

      const killed = await cli(["kill", "ssh-kill", "--grace", "300ms", "--json"], box.env);
      expect(killed.code).toBe(0);
      const out = JSON.parse(killed.stdout);
      expect(out.cleanup.remote).toEqual([
        expect.objectContaining({ target: "pool", groups: 1, left: 0 }),
      ]);
      expect(out.cleanup.errors).toEqual([]);
      expect((await run.done).code).toBe(137);
      expect([...pool, ...cmd].filter(alive)).toEqual([]);
      expect(jobProcesses("ssh-kill")).toEqual([]);
      expect(await listening(localPort)).toBe(false);
      expect(await listening(remotePort)).toBe(false);
      expect(await listening(dialPort)).toBe(false);
      if (relay) expect(alive(relay)).toBe(false);
    },
  );

  it("kill leaves nothing on the pool, 20 times in a row", { timeout: 600_000 }, async () => {
    box = sandbox({ PARSL_SIDECAR_SSH_CONFIG: configPath });
    for (let i = 0; i < 20; i++) {
      const job = `ssh-rep-${i}`;
      const { run, pool, cmd } = await startJob(box, job);
      const killed = await cli(["kill", job, "--grace", "300ms"], box.env);
      expect(killed.code).toBe(0);
      expect((await run.done).code).toBe(137);
      expect([...pool, ...cmd].filter(alive)).toEqual([]);
      expect(jobProcesses(job)).toEqual([]);
    }
  });

  it("a SIGKILLed sidecar: the watchdog on the pool stops the workers and the job's durable relay within its bound (its SSH connection dropped)", {
    timeout: 90_000,
  }, async () => {
    box = sandbox({ PARSL_SIDECAR_SSH_CONFIG: configPath, PARSL_SIDECAR_WATCHDOG_S: "3" });
    const { run, pool, ports } = await startJob(box, "ssh-lost", "durable");
    // the relay keeps workers' connections across a drop for 120 s by itself; it is the job's, and goes with it
    const relay = ports[3]!;
    expect(relay).toBeGreaterThan(1);
    expect(alive(relay)).toBe(true);
    run.child.kill("SIGKILL");
    await run.exited;
    await waitFor(
      "the pool's workers and the relay to be gone",
      () => [...pool, relay].every((p) => !alive(p)),
      15_000,
    );
    const listed = await cli(["jobs", "--json"], box.env);
    expect(JSON.parse(listed.stdout).jobs[0]).toMatchObject({ id: "ssh-lost", state: "lost" });
    expect(jobProcesses("ssh-lost")).toEqual([]);
  });

  it("a job holding only a durable tunnel on a pool: its relay goes after a SIGKILLed sidecar (a watchdog runs there for it) and on kill from the record", {
    timeout: 90_000,
  }, async () => {
    box = sandbox({ PARSL_SIDECAR_SSH_CONFIG: configPath, PARSL_SIDECAR_WATCHDOG_S: "3" });
    const lost = await startJob(box, "ssh-relay-lost", "durable", false);
    const relay = lost.ports[3]!;
    expect(alive(relay)).toBe(true);
    // killed the moment the tunnel is open: its relay never runs on the pool without the job's watchdog
    lost.run.child.kill("SIGKILL");
    await lost.run.exited;
    await waitFor("the relay to be gone", () => !alive(relay), 15_000);

    const frozen = await startJob(box, "ssh-relay-frozen", "durable", false);
    const relay2 = frozen.ports[3]!;
    const listed = JSON.parse((await cli(["jobs", "--json"], box.env)).stdout).jobs.find(
      (j: { id: string }) => j.id === "ssh-relay-frozen",
    );
    expect(listed.resources).toContainEqual(
      expect.objectContaining({ kind: "tunnel", target: "pool", relay: true }),
    );
    frozen.run.child.kill("SIGSTOP");
    try {
      const killed = await cli(["kill", "ssh-relay-frozen", "--grace", "300ms", "--json"], box.env);
      expect(killed.code).toBe(0);
      expect(JSON.parse(killed.stdout).cleanup.remote).toEqual([
        expect.objectContaining({ target: "pool", groups: 0, left: 0 }),
      ]);
      expect(alive(relay2)).toBe(false);
    } finally {
      frozen.run.child.kill("SIGKILL");
      await frozen.run.exited;
    }
  });

  it("a worker block of a job: a sidecar SIGKILLed the moment the block starts still has a watchdog on the pool, which ends the block", {
    timeout: 90_000,
  }, async () => {
    box = sandbox({ PARSL_SIDECAR_SSH_CONFIG: configPath, PARSL_SIDECAR_WATCHDOG_S: "3" });
    const pidFile = join(box.dir, "block.pid");
    const start = JSON.stringify({
      target: "pool",
      owner: "ssh-block-lost",
      label: "workers",
      script: `sleep 1000 & echo $! > ${pidFile}; wait`,
    });
    const run = startCli(
      [
        "run",
        "--job",
        "ssh-block-lost",
        "--",
        "sh",
        "-c",
        `$PARSL_SIDECAR_CLI call executors.blocks.start '${start}' > /dev/null && sleep 1000`,
      ],
      box.env,
    );
    await waitFor(
      "the block's worker",
      () => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "",
      30_000,
    );
    const worker = Number(readFileSync(pidFile, "utf8"));
    started.push(worker);
    run.child.kill("SIGKILL");
    await run.exited;
    expect(alive(worker)).toBe(true);
    await waitFor("the block's worker to be gone", () => !alive(worker), 15_000);
    // the rest of what carries the job's marker may go a moment later: the block's output
    // followers (`tail -f --pid` sees its shell's end within a second) and, the pool being this
    // machine, COMMAND here, which the watchdog's scan also reaches
    await waitFor(
      "nothing of the job left",
      () => jobProcesses("ssh-block-lost").length === 0,
      15_000,
    ).catch(() => undefined);
    const left = jobProcesses("ssh-block-lost");
    started.push(...left);
    expect(left.map((pid) => `${pid} ${cmdline(pid)}`)).toEqual([]);
  });

  it("the SSH connection drops and comes back: the workers and the job's durable relay survive (a new watchdog takes over), kill still cleans up", {
    timeout: 90_000,
  }, async () => {
    const b = (box = sandbox({
      PARSL_SIDECAR_SSH_CONFIG: configPath,
      PARSL_SIDECAR_WATCHDOG_S: "3",
    }));
    const { run, pool, cmd, ports } = await startJob(b, "ssh-blip", "durable");
    const relay = ports[3]!;
    // the sidecar's leases on the pool, from its connection file (COMMAND has it in its environment)
    const conn = readFileSync(`/proc/${cmd[0]}/environ`, "utf8")
      .split("\0")
      .find((e) => e.startsWith("PARSL_SIDECAR_CONNECTION_FILE="))!
      .split("=")[1]!;
    const leases = async (): Promise<number> => {
      const r = await cli(["ssh", "list", "--json", "--connection", conn], b.env);
      const c = (
        JSON.parse(r.stdout) as Array<{ target: string; leases: number; owners: string[] }>
      ).find((x) => x.target === "pool")!;
      return c.leases;
    };
    const before = await leases();
    // the per-connection sshd processes die, as when the network fails; what the sessions started lives on
    await sshd.dropConnections();
    // longer than the bound (3 s) plus a check: an orphaned watchdog would have cleaned up by now
    await new Promise((r) => setTimeout(r, 8000));
    expect({ pool: pool.map(alive), relay: alive(relay) }).toEqual({
      pool: pool.map(() => true),
      relay: true,
    });
    // the lost watchdog's lease went with it: as many as before the drop
    expect(await leases()).toBe(before);
    const killed = await cli(["kill", "ssh-blip", "--grace", "300ms", "--json"], box.env);
    expect(killed.code).toBe(0);
    expect(JSON.parse(killed.stdout).cleanup.remote).toEqual([
      expect.objectContaining({ target: "pool", groups: 1, left: 0 }),
    ]);
    expect((await run.done).code).toBe(137);
    expect([...pool, ...cmd, relay].filter(alive)).toEqual([]);
  });

  it("kill from the record when the sidecar is gone reaches the pool over SSH", {
    timeout: 90_000,
  }, async () => {
    box = sandbox({ PARSL_SIDECAR_SSH_CONFIG: configPath, PARSL_SIDECAR_WATCHDOG_S: "3600" });
    const { run, pool, ports } = await startJob(box, "ssh-frozen", "durable");
    const relay = ports[3]!;
    expect(alive(relay)).toBe(true);
    run.child.kill("SIGSTOP"); // no heartbeat, connection still open: the watchdog waits its (long) bound
    try {
      await new Promise((r) => setTimeout(r, 500));
      expect(pool.every(alive)).toBe(true);
      const killed = await cli(["kill", "ssh-frozen", "--grace", "300ms", "--json"], box.env);
      expect(killed.code).toBe(0);
      expect(JSON.parse(killed.stdout).cleanup.remote).toEqual([
        expect.objectContaining({ target: "pool", groups: 1, left: 0 }),
      ]);
      expect([...pool, relay].filter(alive)).toEqual([]);
    } finally {
      run.child.kill("SIGKILL");
      await run.exited;
    }
  });
});

describe("run --connection with --executors (the pool's tunnels live in an already running sidecar)", () => {
  it("completes over the sidecar's RPC, owns the worker tunnel for the job, and releases it when the job ends", {
    timeout: 90_000,
  }, async () => {
    box = sandbox({ PARSL_SIDECAR_SSH_CONFIG: configPath });
    const served = await cli(["serve", "--detach"], box.env);
    expect(served.code).toBe(0);
    const conn = join(box.env.PARSL_SIDECAR_RUNTIME_DIR!, "sidecar.json");
    try {
      const file = join(box.dir, "executors.json");
      writeFileSync(file, JSON.stringify({ remote: { SSH_TARGET: "pool", CORES_PER_WORKER: 1 } }));
      const during = join(box.dir, "tunnels-during.json");
      const cmd = `cat "$PARSL_SIDECAR_EXECUTORS"; ${process.execPath} ${CLI} tunnels list --json --connection ${conn} > ${during}`;
      const r = await cli(
        [
          "run",
          "--job",
          "conn-exec",
          "--connection",
          conn,
          "--executors",
          file,
          "--",
          "sh",
          "-c",
          cmd,
        ],
        box.env,
      );
      expect(r.stderr).not.toMatch(/error|failed/i);
      expect(r.code).toBe(0);
      const done = JSON.parse(r.stdout) as { remote: Record<string, unknown> };
      expect(done.remote).toMatchObject({ SSH_TARGET: "pool", HOST_IP: "127.0.0.1" });
      expect(done.remote.WORKER_PORT).toEqual(expect.any(Number));
      const tunnels = JSON.parse(readFileSync(during, "utf8")) as Array<{ owner: string }>;
      expect(tunnels).toEqual([expect.objectContaining({ owner: "conn-exec" })]);
      expect(await listening(done.remote.WORKER_PORT as number)).toBe(false); // the pool is this machine: its listener is gone
      const after = JSON.parse(
        (await cli(["tunnels", "list", "--json", "--connection", conn], box.env)).stdout,
      ) as unknown[];
      expect(after).toEqual([]);
    } finally {
      await cli(["stop", "--connection", conn], box.env);
    }
  });
});
