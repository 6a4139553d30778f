import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { certValidity, startCertNode, type CertNode } from "./cert-node.js";
import { stopAllAfterAll } from "./hooks.js";
import { leftoverProcesses } from "./leftovers.js";
import { sshdEntry, writeSshConfig } from "./ssh-config.js";

const run = promisify(execFile);
stopAllAfterAll();

describe("certificate login node", () => {
  let n: CertNode;
  const ssh = (config: string, alias: string) =>
    run("ssh", ["-F", config, alias, "echo in-$USER"], { timeout: 20000 });

  beforeAll(async () => {
    n = await startCertNode();
  }, 20000);
  afterAll(async () => {
    const dirs = [n?.dir, n?.sshd.dir];
    await n?.stop();
    for (const d of dirs) if (d) expect(leftoverProcesses(d)).toEqual([]);
  }, 20000);

  it("lets `ssh -F CONFIG HOST` in with the key and its certificate", async () => {
    const { stdout } = await ssh(n.configPath, n.alias);
    expect(stdout.trim()).toBe(`in-${n.sshd.user}`);
    const config = readFileSync(n.configPath, "utf8");
    expect(config).toContain(`CertificateFile ${n.key.certPath}`);
    expect(readFileSync(n.sshd.logPath, "utf8")).toMatch(/Accepted publickey .* ED25519-CERT/);
  });

  it("refuses an expired certificate, and the server says why", async () => {
    expect(certValidity(n.expiredKey.certPath)).toMatch(/^from 2020-01-01.* to 2020-01-02/);
    await expect(ssh(n.configPath, n.expiredAlias)).rejects.toThrow(/Permission denied/);
    expect(readFileSync(n.sshd.logPath, "utf8")).toMatch(/[Cc]ertificate invalid: expired/);
  });

  it("refuses the plain key that is in the authorized_keys it ignores", async () => {
    const bare = writeSshConfig(n.dir, [sshdEntry("bare", n.sshd)], "bare_config");
    await expect(ssh(bare, "bare")).rejects.toThrow(/Permission denied/);
  });

  it("refuses certificates not yet valid, from another CA, or for another user", async () => {
    const other = join(n.dir, "other_ca");
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other]);
    const certs = {
      future: n.certify("future", "+1h:+2h"),
      otherCa: n.certify("otherca", "-5m:+1h", { ca: other }),
      otherUser: n.certify("otheruser", "-5m:+1h", { principal: "nobody-here" }),
    };
    const cfg = writeSshConfig(
      n.dir,
      Object.entries(certs).map(([alias, c]) =>
        sshdEntry(alias, n.sshd, { identityFile: c.keyPath, certificateFile: c.certPath }),
      ),
      "negative_config",
    );
    for (const alias of Object.keys(certs)) {
      await expect(ssh(cfg, alias), alias).rejects.toThrow(/Permission denied/);
    }
    const log = readFileSync(n.sshd.logPath, "utf8");
    expect(log).toContain("Certificate invalid: not yet valid");
    expect(log).toMatch(/Failed publickey .* ED25519-CERT .* ID testbed-otherca /);
    expect(log).toContain("Certificate invalid: name is not a listed principal");
    // And a fresh one from the same CA works: certify() makes certificates a test can use.
    const fresh = n.certify("fresh", "-1m:+10m");
    const ok = writeSshConfig(
      n.dir,
      [
        sshdEntry("fresh", n.sshd, {
          identityFile: fresh.keyPath,
          certificateFile: fresh.certPath,
        }),
      ],
      "fresh_config",
    );
    await ssh(ok, "fresh");
  });
});
