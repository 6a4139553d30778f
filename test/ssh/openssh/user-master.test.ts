// The user's own ControlMaster (a ControlPath in their ssh config, a master started with the
// real `ssh -M`): used instead of a new one, left running after close() with the link's
// forwards taken back, and replaced by the link's own master when it goes away.
import { execFileSync, spawnSync } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAllAfterAll } from "../../testbed/hooks.js";
import { makeTempDir } from "../../testbed/registry.js";
import { entryFor } from "../helpers.js";
import { eventually } from "../helpers.js";
import { exec, opensshBed, type OpenSshBed } from "./helpers.js";

stopAllAfterAll();

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(true));
  });
}

describe("the user's ControlMaster", () => {
  let bed: OpenSshBed;
  let cmDir: string;
  const ssh = (...args: string[]) =>
    spawnSync("ssh", ["-F", bed.configPath, ...args], { encoding: "utf8", timeout: 20000 });
  const userMaster = (): string | undefined =>
    /pid=(\d+)/.exec(ssh("-O", "check", "mine").stderr)?.[1];

  beforeAll(async () => {
    cmDir = makeTempDir("openssh-cm");
    bed = await opensshBed({
      entries: (s) => [
        entryFor("mine", s, { ControlPath: join(cmDir, "cm-%C"), ControlMaster: "auto" }),
      ],
    });
  }, 30000);
  afterAll(async () => {
    ssh("-O", "exit", "mine");
    await bed?.stop();
  }, 30000);

  const startUserMaster = (): string => {
    // as a user would: `ssh -M -N -f HOST` (the code typed once, here a key)
    execFileSync("ssh", ["-F", bed.configPath, "-M", "-N", "-f", "mine"], { timeout: 20000 });
    const pid = userMaster();
    if (!pid) throw new Error("the user's master did not start");
    return pid;
  };

  it("is used, and left running after close() without the link's forwards", {
    timeout: 40000,
  }, async () => {
    const pid = startUserMaster();
    const expected = /^controlpath (.+)$/m.exec(ssh("-G", "mine").stdout)![1];
    const link = await bed.open({}, "mine");
    expect(link.sharedMaster).toBe(true);
    expect(link.controlPath).toBe(expected);
    expect(String(link.masterPid)).toBe(pid);
    expect(link.info().server_version).toBeNull(); // its handshake is not ours to see
    expect((await exec(link, "echo via yours")).stdout).toBe("via yours\n");
    const l = await link.listen("127.0.0.1", 0, (c) => c.end("hi\n"));
    expect(await refused(l.port)).toBe(false);
    link.close();
    expect(await eventually(() => refused(l.port))).toBe(true);
    expect(userMaster()).toBe(pid);
  });

  it("not used with reuseUserMaster false", { timeout: 40000 }, async () => {
    if (!userMaster()) startUserMaster();
    const link = await bed.open({ reuseUserMaster: false }, "mine");
    expect(link.sharedMaster).toBe(false);
    expect(link.controlPath).toContain(bed.runtimeDir);
    link.close();
    expect(userMaster()).toBeDefined();
  });

  it("when it exits: down naming it, then the link's own master", { timeout: 40000 }, async () => {
    if (!userMaster()) startUserMaster();
    const link = await bed.open({}, "mine");
    expect(link.sharedMaster).toBe(true);
    const down = new Promise<Error>((r) => link.once("down", r));
    ssh("-O", "exit", "mine");
    expect((await down).message).toMatch(/your ControlMaster at .*cm-.* exited/);
    expect(await eventually(() => link.state === "ready")).toBe(true);
    expect(link.sharedMaster).toBe(false);
    expect((await exec(link, "echo via ours")).stdout).toBe("via ours\n");
    link.close();
  });
});
