// Which transport carries a pool: a preference from a file, an option or the environment, and
// `auto` deciding by the `ssh` found (a stand-in prints each version); through SshConnections and
// `ssh.check` against the test bed's sshd, the link is the one chosen and says why.
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { isSshLease } from "../../src/ssh/connections.js";
import {
  decideTransport,
  defaultPreference,
  parsePreference,
} from "../../src/ssh/transport-choice.js";
import { sshSetup } from "./helpers.js";

const FAKE = fileURLToPath(new URL("../fixtures/fake-ssh-version.sh", import.meta.url));

/** `decideTransport` against a stand-in ssh printing `printed`. */
async function decideWith(printed: string, pref: "auto" | "openssh" | "ssh2") {
  process.env.FAKE_SSH_VERSION = printed;
  return await decideTransport(pref, FAKE);
}

afterEach(() => {
  delete process.env.FAKE_SSH_VERSION;
});

describe("transport preference", () => {
  it("takes auto, openssh and ssh2, and names the field and value of anything else", () => {
    expect(parsePreference("openssh", "SSH_TRANSPORT")).toBe("openssh");
    expect(() => parsePreference("OpenSSH", "SSH_TRANSPORT")).toThrow(
      /Expected `SSH_TRANSPORT` to be one of auto, openssh, ssh2, got `"OpenSSH"` \(string\)/,
    );
    expect(defaultPreference({})).toBe("auto");
    expect(defaultPreference({ PARSL_SIDECAR_SSH_TRANSPORT: "ssh2" })).toBe("ssh2");
    expect(() => defaultPreference({ PARSL_SIDECAR_SSH_TRANSPORT: "libssh" })).toThrow(
      /PARSL_SIDECAR_SSH_TRANSPORT/,
    );
  });

  it("auto: OpenSSH 8.4 or newer is openssh, older or another ssh is ssh2, each saying why", async () => {
    const new_ = await decideWith("OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15", "auto");
    expect(new_).toMatchObject({
      kind: "openssh",
      why: expect.stringMatching(/OpenSSH 9\.2 found/),
    });
    const old = await decideWith("OpenSSH_7.4p1, OpenSSL 1.0.2k-fips", "auto");
    expect(old).toMatchObject({
      kind: "ssh2",
      why: expect.stringMatching(/7\.4 is older than 8\.4/),
    });
    const other = await decideWith("Dropbear v2022.83", "auto");
    expect(other).toMatchObject({ kind: "ssh2", why: expect.stringMatching(/not OpenSSH/) });
    const none = await decideTransport("auto", "/nonexistent/ssh");
    expect(none).toMatchObject({ kind: "ssh2", why: expect.stringMatching(/no usable/) });
  });

  it("openssh asked for: refused with the reason when ssh is missing or too old", async () => {
    await expect(decideTransport("openssh", "/nonexistent/ssh")).rejects.toMatchObject({
      code: "SSH_CONFIG",
    });
    await expect(decideWith("OpenSSH_7.2p2", "openssh")).rejects.toThrow(/7\.6 or newer/);
    expect(await decideWith("OpenSSH_7.9p1", "openssh")).toMatchObject({ kind: "openssh" });
    expect(await decideTransport("ssh2", "/nonexistent/ssh")).toMatchObject({ kind: "ssh2" });
  });
});

describe("SshConnections picks the link", () => {
  it("openssh for an acquire that asks for it, ssh2 for one that asks for that", {
    timeout: 60_000,
  }, async () => {
    const a = await sshSetup();
    const b = await sshSetup();
    try {
      const l1 = await a.pool.acquire("pool", "t", { transport: "openssh" });
      const l2 = await b.pool.acquire("pool", "t", { transport: "ssh2" });
      expect(isSshLease(l1) && l1.connection.transport).toBe("openssh");
      expect(isSshLease(l2) && l2.connection.transport).toBe("ssh2");
      expect((await l1.exec("echo via-openssh")).stdout).toBe("via-openssh\n");
      expect(a.pool.decision("pool")?.why).toMatch(/openssh was asked for/);
      l1.release();
      l2.release();
    } finally {
      await a.pool.close();
      await b.pool.close();
      await a.sshd.stop();
      await b.sshd.stop();
    }
  });

  it("a pool's transport holds for its later connections that name none", {
    timeout: 60_000,
  }, async () => {
    // as executors.complete then tunnels.open, staging and blocks do: only the first names it
    const s = await sshSetup({ pool: { transport: "ssh2" } });
    try {
      const first = await s.pool.acquire("pool", "complete", { transport: "openssh" });
      first.release();
      expect(s.pool.decision("pool")).toBeUndefined(); // that connection closed
      const later = await s.pool.acquire("pool", "tunnel");
      expect(isSshLease(later) && later.connection.transport).toBe("openssh");
      later.release();
      const other = await s.pool.acquire("pool", "check", { transport: "ssh2" });
      other.release();
      const after = await s.pool.acquire("pool", "tunnel");
      expect(isSshLease(after) && after.connection.transport).toBe("ssh2");
      after.release();
    } finally {
      await s.pool.close();
      await s.sshd.stop();
    }
  });

  it("a preference applies to a new connection only: the open one is shared", {
    timeout: 60_000,
  }, async () => {
    const s = await sshSetup();
    try {
      const l1 = await s.pool.acquire("pool", "t", { transport: "ssh2" });
      const l2 = await s.pool.acquire("pool", "t", { transport: "openssh" });
      expect(isSshLease(l2) && l2.connection.transport).toBe("ssh2");
      l1.release();
      l2.release();
    } finally {
      await s.pool.close();
      await s.sshd.stop();
    }
  });
});
