import { execFile, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAllAfterAll } from "./hooks.js";
import { tcpProbe } from "./procs.js";
import { sshdEntry, writeSshConfig } from "./ssh-config.js";
import { startSshd, type Sshd } from "./sshd.js";
import { leftoverProcesses } from "./leftovers.js";

const run = promisify(execFile);
stopAllAfterAll();

function ssh(s: Sshd, o: { identity?: string; knownHosts?: string } = {}, cmd = "true") {
  return run("ssh", [...s.sshArgs(o), cmd], { timeout: 20000 });
}

describe("startSshd", () => {
  let s: Sshd;
  beforeAll(async () => {
    s = await startSshd({
      encryptedKey: true,
      unauthorizedKey: true,
      extraConfig: ["MaxStartups 50"],
    });
  }, 20000);
  afterAll(async () => {
    const dir = s?.dir;
    await s?.stop();
    if (dir) expect(leftoverProcesses(dir)).toEqual([]);
  }, 20000);

  it("accepts the generated key with the generated known_hosts", { timeout: 20000 }, async () => {
    const { stdout } = await run("ssh", [...s.sshArgs(), "echo hello-$USER"], { timeout: 20000 });
    expect(stdout.trim()).toBe(`hello-${s.user}`);
    expect(s.hostKeyPublic).toMatch(
      new RegExp(`^\\[127\\.0\\.0\\.1\\]:${s.port} ssh-ed25519 AAAA`),
    );
  });

  it("serves sftp", { timeout: 20000 }, async () => {
    const batch = join(s.dir, "sftp-batch");
    writeFileSync(batch, `put ${s.configPath} ${join(s.dir, "copied")}\n`);
    await run(
      "sftp",
      [
        "-F",
        "none",
        "-i",
        s.keyPath,
        "-P",
        String(s.port),
        "-o",
        `UserKnownHostsFile=${s.knownHostsPath}`,
        "-o",
        "BatchMode=yes",
        "-b",
        batch,
        `${s.user}@${s.host}`,
      ],
      { timeout: 20000 },
    );
    await run("cmp", [s.configPath, join(s.dir, "copied")]);
  });

  it("rejects the unauthorized key", { timeout: 20000 }, async () => {
    await expect(ssh(s, { identity: s.unauthorizedKeyPath! })).rejects.toThrow(/Permission denied/);
  });

  it("has an encrypted key that needs its passphrase", { timeout: 20000 }, async () => {
    await run("ssh-keygen", ["-y", "-P", s.encryptedKeyPassphrase!, "-f", s.encryptedKeyPath!]);
    await expect(
      run("ssh-keygen", ["-y", "-P", "wrong", "-f", s.encryptedKeyPath!]),
    ).rejects.toThrow();
  });

  it("works through a generated ssh_config alias, also via ProxyJump", {
    timeout: 20000,
  }, async () => {
    const cfg = writeSshConfig(s.dir, [
      sshdEntry("tb-direct", s),
      sshdEntry("tb-jumped", s, { proxyJump: "tb-direct" }),
    ]);
    const direct = await run("ssh", ["-F", cfg, "tb-direct", "echo direct"], { timeout: 20000 });
    expect(direct.stdout.trim()).toBe("direct");
    const jumped = await run("ssh", ["-F", cfg, "tb-jumped", "echo jumped"], { timeout: 20000 });
    expect(jumped.stdout.trim()).toBe("jumped");
  });

  it("restart keeps the port and host key", { timeout: 20000 }, async () => {
    const before = { port: s.port, pid: s.pid, key: s.hostKeyPublic };
    await s.restart();
    expect(s.pid).not.toBe(before.pid);
    expect([s.port, s.hostKeyPublic]).toEqual([before.port, before.key]);
    await ssh(s);
  });

  it("restartListener ends connections but not what their sessions started", {
    timeout: 30000,
  }, async () => {
    const marker = "sleep 59.4321"; // a command line no other process has
    const child = spawn("ssh", [...s.sshArgs(), `echo started; exec ${marker}`], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    await new Promise<void>((r) => child.stdout.once("data", () => r()));
    const before = { port: s.port, pid: s.pid };
    await s.restartListener();
    expect(await exited).not.toBe(0); // the connection is gone
    expect(s.pid).not.toBe(before.pid);
    expect(s.port).toBe(before.port);
    // the session's command lives on, as with `systemctl restart ssh`
    const left = leftoverProcesses(marker);
    expect(left, JSON.stringify(left)).toHaveLength(1);
    process.kill(Number(left[0]!.split(" ")[0]), "SIGKILL");
    await ssh(s);
  });

  it("killConnections drops an open session; a new one succeeds", { timeout: 30000 }, async () => {
    const child = spawn("ssh", [...s.sshArgs(), "echo started; sleep 60"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    await new Promise<void>((r) => child.stdout.once("data", () => r()));
    expect(await s.killConnections()).toBeGreaterThan(0);
    expect(await exited).toBe(255);
    expect(await tcpProbe(s.host, s.port)).toBe(true);
    await ssh(s);
  });

  it("sessions get the caller's SetEnv and the defaults' in one line (sshd reads only the first)", {
    timeout: 20000,
  }, async () => {
    const e = await startSshd({ extraConfig: ["SetEnv PSC_A=1", "SetEnv PSC_B=2"] });
    try {
      const { stdout } = await ssh(e, {}, "echo $PSC_A/$PSC_B/$PYENV_REHASH_TIMEOUT");
      expect(stdout.trim()).toBe("1/2/0");
    } finally {
      await e.stop();
    }
  });

  it("rotateHostKey makes the old known_hosts fail", { timeout: 30000 }, async () => {
    const old = s.hostKeyPublic;
    const line = await s.rotateHostKey();
    expect(line).not.toBe(old);
    await expect(ssh(s)).rejects.toThrow(
      /HOST IDENTIFICATION HAS CHANGED|Host key verification failed/,
    );
    const fresh = join(s.dir, "known_hosts_new");
    writeFileSync(fresh, `${line}\n`);
    await ssh(s, { knownHosts: fresh });
  });
});
