import { execFile } from "node:child_process";
import { once } from "node:events";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { warnSkip } from "./hooks.js";
import { canUseNamespaces } from "./netns.js";
import { alive } from "./procs.js";
import { leftoverProcesses } from "./leftovers.js";
import { CLI, REPO_ROOT as ROOT, TSX, cliUp } from "./cli-client.js";

const run = promisify(execFile);
const support = await canUseNamespaces();
if (!support.ok) warnSkip("testbed cli: up topology", support.reason);
describe("testbed cli", () => {
  it("up sshd prints one JSON line and stops everything when stdin closes", {
    timeout: 60000,
  }, async () => {
    const { info, down } = await cliUp(["sshd", "--extra-config", "GatewayPorts clientspecified"]);
    expect(info).toMatchObject({ kind: "sshd", host: "127.0.0.1", user: expect.any(String) });
    const { stdout } = await run("ssh", [...(info.sshArgs as string[]), "echo up"], {
      timeout: 20000,
    });
    expect(stdout.trim()).toBe("up");
    expect(await down()).toBe(0);
    expect(alive(info.pid as number)).toBe(false);
    expect(leftoverProcesses(info.dir as string)).toEqual([]);
  });

  it("SIGTERM also stops everything", { timeout: 60000 }, async () => {
    const { child, info } = await cliUp(["sshd"]);
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    expect((await exited)[0]).toBe(0);
    expect(alive(info.pid as number)).toBe(false);
  });

  it("rejects an unknown kind with usage and exit code 2", { timeout: 30000 }, async () => {
    await expect(run(TSX, [CLI, "up", "nope"], { cwd: ROOT })).rejects.toMatchObject({ code: 2 });
  });

  it.skipIf(!support.ok)(
    `up topology --slurm: sbatch over ssh on the head node${support.ok ? "" : ` (SKIPPED: ${support.reason})`}`,
    { timeout: 90000 },
    async () => {
      const { info, down } = await cliUp(["topology", "--slurm"]);
      try {
        expect(info.sshd.host).toBe(info.head.addr);
        const job = "ip -o -4 addr show | grep -o 'inet 10[.0-9]*'";
        const out = `${info.slurm.dir}/job.out`;
        const { stdout } = await run(
          "ssh",
          [
            ...(info.sshd.sshArgs as string[]),
            `sbatch --wait -o ${out} --wrap "${job}" >/dev/null && cat ${out}; squeue -h | wc -l`,
          ],
          { timeout: 60000 },
        );
        expect(stdout.trim().split("\n")).toEqual([`inet ${info.compute.addr}`, "0"]);
      } finally {
        expect(await down()).toBe(0);
      }
      const { stdout: nsList } = await run("ip", ["netns", "list"]);
      expect(nsList).not.toContain(info.head.ns);
      expect(leftoverProcesses(info.slurm.dir as string)).toEqual([]);
      expect(leftoverProcesses(info.sshd.dir as string)).toEqual([]);
    },
  );
});
