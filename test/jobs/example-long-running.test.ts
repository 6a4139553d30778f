/**
 * examples/long-running against a private sshd on loopback: the app starts on the pool, its page
 * comes through the local forward, and `kill` leaves neither the app nor the tunnel's listener.
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobStore } from "../../src/jobs/record.js";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { writeSshConfig } from "../testbed/ssh-config.js";
import { startSshd, type Sshd } from "../testbed/sshd.js";
import { entryFor } from "../ssh/helpers.js";
import {
  alive,
  cli,
  jobProcesses,
  ROOT,
  type Sandbox,
  sandbox,
  startCli,
  waitFor,
} from "./helpers.js";

stopAllAfterAll();

const python = join(ROOT, ".venv", "bin", "python");
let sshd: Sshd;
let box: Sandbox;
beforeAll(async () => {
  sshd = await startSshd();
  const config = writeSshConfig(sshd.dir, [entryFor("pool", sshd)], "client_config");
  box = sandbox({ PARSL_SIDECAR_SSH_CONFIG: config, POOL: "pool" });
}, 60_000);
afterAll(async () => {
  await sshd?.stop();
  box?.cleanup();
  rmSync("/tmp/parsl-sidecar-example-lab-test", { recursive: true, force: true });
});

describe.skipIf(!existsSync(python))("examples/long-running", () => {
  it("serves through the tunnel until `kill`, then nothing is left", {
    timeout: 120_000,
  }, async () => {
    const run = startCli(
      ["run", "--job", "lab-test", "--", python, join(ROOT, "examples", "long-running", "main.py")],
      box.env,
    );
    let url = "";
    await waitFor(
      "the app's URL",
      () => {
        url = /open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(run.output().stdout)?.[1] ?? "";
        if (run.child.exitCode !== null) throw new Error(`run ended early: ${run.output().stderr}`);
        return url !== "";
      },
      60_000,
    );
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/Hello from .*job lab-test/);

    const rec = new JobStore(box.env.PARSL_SIDECAR_STATE_DIR!).read("lab-test");
    const app = rec.resources.find((r) => r.kind === "remote_group");
    expect(app).toMatchObject({ target: "pool", label: "app" });
    expect(rec.resources.filter((r) => r.kind === "tunnel")).toHaveLength(1);
    const appPid = (app as { pgid: number }).pgid;
    expect(alive(appPid)).toBe(true);

    const killed = await cli(["kill", "lab-test"], box.env);
    expect(killed.code).toBe(0);
    expect(killed.stdout).toMatch(/job lab-test killed \(exit code 143\)/);
    expect((await run.done).code).toBe(143);
    expect(alive(appPid)).toBe(false);
    expect(jobProcesses("lab-test")).toEqual([]);
    await expect(fetch(url)).rejects.toThrow();
  });
});
