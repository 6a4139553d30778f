import { execFile } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { warnSkip } from "./hooks.js";
import { canUseNamespaces } from "./netns.js";
import { alive } from "./procs.js";
import { leftoverProcesses } from "./leftovers.js";
import { CLI, REPO_ROOT as ROOT, TSX, cliUp } from "./cli-client.js";

const run = promisify(execFile);
const support = await canUseNamespaces();
const root = process.getuid?.() === 0;
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

  it("up cert: the config's alias logs in with the certificate, the expired one does not", {
    timeout: 60000,
  }, async () => {
    const { info, down } = await cliUp(["cert"]);
    try {
      const cfg = info.configPath as string;
      const { stdout } = await run("ssh", ["-F", cfg, info.alias, "echo cert"], { timeout: 20000 });
      expect(stdout.trim()).toBe("cert");
      await run("ssh", [...(info.sshArgs as string[]), "true"], { timeout: 20000 });
      await expect(
        run("ssh", ["-F", cfg, info.expiredAlias, "true"], { timeout: 20000 }),
      ).rejects.toThrow(/Permission denied/);
    } finally {
      expect(await down()).toBe(0);
    }
    expect(alive(info.sshd.pid as number)).toBe(false);
    expect(leftoverProcesses(info.dir as string)).toEqual([]);
  });

  it.skipIf(!root)(
    `up otp --control-master: the code via askpass, the master reused, all gone after${root ? "" : " (SKIPPED: needs root)"}`,
    { timeout: 60000 },
    async () => {
      const { info, down } = await cliUp(["otp", "--control-master"]);
      const cfg = info.configPath as string;
      try {
        expect(info.controlPath).toEqual(expect.any(String));
        // Through the master that the config's ControlPath names: no code needed.
        const batch = ["-F", cfg, "-o", "BatchMode=yes", info.alias, "echo master"];
        expect((await run("ssh", batch, { timeout: 20000 })).stdout.trim()).toBe("master");
        // Without it, the code: typed by the askpass the JSON names, or the wrong one refused.
        const direct = ["-F", cfg, "-S", "none", info.alias, "echo code"];
        const env = (e: Record<string, string>) => ({ ...process.env, ...e });
        const ok = await run("ssh", direct, { timeout: 20000, env: env(info.askpassEnv) });
        expect(ok.stdout.trim()).toBe("code");
        await expect(
          run("ssh", direct, { timeout: 20000, env: env(info.wrongAskpassEnv) }),
        ).rejects.toThrow(/Permission denied/);
        const [cmd, ...args] = info.codeCommand as string[];
        expect((await run(cmd!, args)).stdout.trim()).toMatch(/^\d{6}$/);
      } finally {
        expect(await down()).toBe(0);
      }
      expect(alive(info.controlMasterPid as number)).toBe(false);
      expect(existsSync(`/etc/pam.d/${info.pamService}`)).toBe(false);
      expect(leftoverProcesses(info.dir as string)).toEqual([]);
    },
  );

  it.skipIf(!support.ok)(
    `up proxycommand: the hidden host through the jump only${support.ok ? "" : ` (SKIPPED: ${support.reason})`}`,
    { timeout: 60000 },
    async () => {
      const { info, down } = await cliUp(["proxycommand"]);
      try {
        const cfg = info.configPath as string;
        const { stdout } = await run("ssh", ["-F", cfg, info.alias, "echo $SSH_CONNECTION"], {
          timeout: 20000,
        });
        expect(stdout.trim().split(" ")[2]).toBe(info.compute.addr);
        await expect(
          run("ssh", ["-F", cfg, "-o", "ProxyCommand=none", info.alias, "true"], {
            timeout: 20000,
          }),
        ).rejects.toThrow(/Could not resolve hostname/);
      } finally {
        expect(await down()).toBe(0);
      }
      const { stdout: nsList } = await run("ip", ["netns", "list"]);
      expect(nsList).not.toContain(info.head.ns);
      expect(leftoverProcesses(info.jump.dir as string)).toEqual([]);
    },
  );

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
