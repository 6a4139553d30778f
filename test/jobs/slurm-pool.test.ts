/**
 * A Slurm pool (the test bed's one-node Slurm, reached over a loopback sshd): the job's Slurm
 * jobs are cancelled by `kill` (one scancel for all) and by the pool's watchdog when the sidecar
 * is SIGKILLed; nothing of the job remains in squeue.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAllAfterAll, warnSkip } from "../testbed/hooks.js";
import { startSlurm, type Slurm } from "../testbed/slurm.js";
import { writeSshConfig } from "../testbed/ssh-config.js";
import { startSshd, type Sshd } from "../testbed/sshd.js";
import { entryFor } from "../ssh/helpers.js";
import {
  cli,
  FIXTURES,
  jobProcesses,
  reap,
  type Sandbox,
  sandbox,
  startCli,
  waitFor,
} from "./helpers.js";

stopAllAfterAll();

const missing = ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch"].filter(
  (f) => !existsSync(f),
);
if (missing.length > 0)
  warnSkip(
    "jobs on a Slurm pool",
    `not installed: ${missing.join(", ")} (scripts/install-system-deps.sh)`,
  );

let slurm: Slurm;
let sshd: Sshd;
let box: Sandbox;
beforeAll(async () => {
  if (missing.length > 0) return;
  slurm = await startSlurm();
  sshd = await startSshd({ extraConfig: [`SetEnv SLURM_CONF=${slurm.env.SLURM_CONF}`] });
  const config = writeSshConfig(sshd.dir, [entryFor("slurmpool", sshd)], "client_config");
  box = sandbox({
    PARSL_SIDECAR_SSH_CONFIG: config,
    POOL_TARGET: "slurmpool",
    SLURM_JOBS: "3",
    PARSL_SIDECAR_WATCHDOG_S: "3",
  });
}, 90_000);
afterAll(async () => {
  reap([...jobProcesses("slurm-kill"), ...jobProcesses("slurm-lost")]); // only after a failure
  await sshd?.stop();
  await slurm?.stop();
  box?.cleanup();
}, 60_000);

async function queued(ids: string[]): Promise<string[]> {
  const { stdout } = await slurm.run(["squeue", "-h", "-o", "%i"]);
  const now = stdout
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean);
  return ids.filter((id) => now.includes(id));
}

async function startJob(job: string): Promise<{ run: ReturnType<typeof startCli>; ids: string[] }> {
  const idFile = join(box.dir, `slurm-${job}`);
  const run = startCli(
    ["run", "--job", job, "--grace", "300ms", "--", join(FIXTURES, "job-with-slurm.sh"), idFile],
    box.env,
  );
  await waitFor("the Slurm jobs to be submitted", () => existsSync(`${idFile}.ready`), 60_000);
  const ids = readFileSync(idFile, "utf8").split("\n").filter(Boolean);
  expect(ids).toHaveLength(3);
  expect(await queued(ids)).toEqual(ids);
  return { run, ids };
}

async function emptied(ids: string[]): Promise<string[]> {
  for (let i = 0; i < 200 && (await queued(ids)).length > 0; i++) await sleep(100);
  return queued(ids);
}

describe.skipIf(missing.length > 0)("jobs on a Slurm pool", () => {
  it("kill cancels the job's Slurm jobs in one scancel; none remains in squeue", {
    timeout: 120_000,
  }, async () => {
    const { run, ids } = await startJob("slurm-kill");
    const killed = await cli(["kill", "slurm-kill", "--grace", "300ms", "--json"], box.env);
    expect(killed.code).toBe(0);
    expect(JSON.parse(killed.stdout).cleanup.remote).toEqual([
      expect.objectContaining({ target: "slurmpool", slurm: 3, left: 0 }),
    ]);
    expect((await run.done).code).toBe(137);
    expect(await emptied(ids)).toEqual([]);
    await slurm.waitIdle(30_000);
  });

  it("a SIGKILLed sidecar: the watchdog cancels the Slurm jobs", { timeout: 120_000 }, async () => {
    // the watchdog's state on the pool (its sshd runs as this user: this home)
    const states = (): string[] => {
      try {
        return readdirSync(join(homedir(), ".parsl-sidecar", "watchdog")).filter((d) =>
          d.startsWith("slurm-lost-"),
        );
      } catch {
        return [];
      }
    };
    const before = new Set(states());
    const { run, ids } = await startJob("slurm-lost");
    run.child.kill("SIGKILL");
    await run.exited;
    expect(await emptied(ids)).toEqual([]);
    // and nothing else of the job (the sshd here is this machine: COMMAND's processes too)
    await waitFor(
      "the job's processes to be gone",
      () => jobProcesses("slurm-lost").length === 0,
      20_000,
    );
    // the watchdog finishes: it removes its state (stopping sshd now would kill it before that)
    await waitFor(
      "the watchdog's state on the pool to be removed",
      () => states().every((d) => before.has(d)),
      20_000,
    );
    await slurm.waitIdle(30_000);
  });
});
