import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openControlMaster } from "./control-master.js";
import { stopAllAfterAll, warnSkip } from "./hooks.js";
import { leftoverProcesses } from "./leftovers.js";
import { startOtpNode, type OtpNode } from "./otp-node.js";
import { alive } from "./procs.js";

const run = promisify(execFile);
stopAllAfterAll();

const root = process.getuid?.() === 0;
const why = "the TOTP node writes a PAM service file in /etc/pam.d, which needs root";
if (!root) warnSkip("ControlMaster on the TOTP node", why);

describe.skipIf(!root)(`ControlMaster on the TOTP node${root ? "" : ` (SKIPPED: ${why})`}`, () => {
  let n: OtpNode;
  beforeAll(async () => {
    n = await startOtpNode({ controlPath: true });
  }, 20000);
  afterAll(async () => {
    const dirs = [n?.dir, n?.sshd.dir];
    await n?.stop();
    for (const d of dirs) if (d) expect(leftoverProcesses(d)).toEqual([]);
  }, 20000);

  it("is opened with the code typed once via askpass, reused without one, then stopped", {
    timeout: 40000,
  }, async () => {
    const log = join(n.dir, "askpass.log");
    const socketPath = n.controlPath!;
    const noCode = ["-o", "BatchMode=yes"]; // a code is then impossible to type
    // Without a master the node needs a code: BatchMode cannot give one.
    await expect(
      run("ssh", ["-F", n.configPath, ...noCode, "-S", "none", n.alias, "true"], {
        timeout: 20000,
      }),
    ).rejects.toThrow(/Permission denied \(keyboard-interactive\)/);

    const m = await openControlMaster({
      configPath: n.configPath,
      alias: n.alias,
      socketPath,
      env: n.askpassEnv({ log }),
      marker: n.dir,
    });
    expect(readFileSync(log, "utf8").trim().split("\n")).toHaveLength(1);
    expect(alive(m.pid)).toBe(true);
    expect(await m.check()).toBe(true);

    // Reused: explicitly with -S, and through the ControlPath the config names.
    const reuse = await run(
      "ssh",
      ["-F", n.configPath, ...noCode, "-S", socketPath, n.alias, "echo via-master"],
      { timeout: 20000 },
    );
    expect(reuse.stdout.trim()).toBe("via-master");
    const viaConfig = await run("ssh", ["-F", n.configPath, ...noCode, n.alias, "echo again"], {
      timeout: 20000,
    });
    expect(viaConfig.stdout.trim()).toBe("again");
    expect(readFileSync(log, "utf8").trim().split("\n")).toHaveLength(1);
    const sshdLog = readFileSync(n.sshd.logPath, "utf8");
    expect(sshdLog.match(/Accepted keyboard-interactive\/pam for /g)).toHaveLength(1);

    await m.stop();
    expect(alive(m.pid)).toBe(false);
    expect(existsSync(socketPath)).toBe(false);
    expect(await m.check()).toBe(false);
    expect(leftoverProcesses(n.dir)).toEqual([]);
  });

  it("fails to open with a wrong code, naming what the server said", {
    timeout: 30000,
  }, async () => {
    await expect(
      openControlMaster({
        configPath: n.configPath,
        alias: n.alias,
        socketPath: join(n.dir, "wrong.sock"),
        env: n.askpassEnv({ wrong: true }),
        marker: n.dir,
      }),
    ).rejects.toThrow(/failed \(255\): .*Permission denied \(keyboard-interactive\)/s);
    expect(existsSync(join(n.dir, "wrong.sock"))).toBe(false);
  });
});
