// Connecting for real: host-key policy, auth failures, bad config, ProxyJump, and surviving
// killed/hung connections and sshd restarts.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventBus, type SidecarEvent } from "../../../src/events.js";
import { PASSPHRASE_ENV } from "../../../src/ssh/auth.js";
import { SshConnections } from "../../../src/ssh/connections.js";
import { stopAllAfterAll } from "../../testbed/hooks.js";
import { childrenTree } from "../../testbed/registry.js";
import { writeSshConfig } from "../../testbed/ssh-config.js";
import { startSshd, type Sshd } from "../../testbed/sshd.js";
import { listenersOf } from "../../tunnels/helpers.js";
import { entryFor, eventually, sshdNodelay } from "../helpers.js";

stopAllAfterAll();

/** What this test process and the sshds (with their sessions) listen on. */
function listening(...sshds: Sshd[]): string[] {
  return listenersOf([process.pid, ...sshds.flatMap((s) => [s.pid, ...childrenTree(s.pid)])]);
}

describe("connecting", () => {
  let sshd: Sshd;
  let n = 0;
  const pools: SshConnections[] = [];
  beforeAll(async () => {
    sshd = await startSshd({ encryptedKey: true, unauthorizedKey: true });
  }, 30000);
  afterAll(async () => {
    for (const p of pools) await p.close();
    await sshd?.stop();
  }, 30000);

  function poolWith(
    extra: Record<string, string | number>,
    over: Parameters<typeof entryFor>[3] = {},
    events?: EventBus,
  ): SshConnections {
    const configPath = writeSshConfig(sshd.dir, [entryFor("h", sshd, extra, over)], `cfg${n++}`);
    const p = new SshConnections({ configPath, events, reconnect: { initialMs: 50, maxMs: 500 } });
    pools.push(p);
    return p;
  }

  it("accept-new (the default) records an unknown host, then trusts it", {
    timeout: 30000,
  }, async () => {
    const kh = join(sshd.dir, "kh-accept-new");
    const pool = poolWith({}, { userKnownHostsFile: kh, extra: { IdentityAgent: "none" } });
    const l = await pool.acquire("h", "t");
    expect((await l.exec("echo ok")).stdout).toBe("ok\n");
    l.release();
    expect(readFileSync(kh, "utf8")).toContain(sshd.hostKeyPublic);
    const again = await pool.acquire("h", "t");
    again.release();
    expect(readFileSync(kh, "utf8").trim().split("\n")).toHaveLength(1);
  });

  it("StrictHostKeyChecking yes refuses an unknown host", { timeout: 30000 }, async () => {
    const pool = poolWith({}, { userKnownHostsFile: join(sshd.dir, "kh-empty") });
    await expect(pool.acquire("h", "t")).rejects.toMatchObject({
      code: "SSH_HOST_KEY",
      message: expect.stringContaining("not in known_hosts"),
    });
  });

  it("authenticates with an ssh-agent (IdentityAgent), no key file needed", {
    timeout: 30000,
  }, async () => {
    const sock = join(sshd.dir, "agent.sock");
    const agent = execFileSync("ssh-agent", ["-s", "-a", sock], { encoding: "utf8" });
    const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(agent)![1]);
    try {
      execFileSync("ssh-add", [sshd.keyPath], {
        env: { ...process.env, SSH_AUTH_SOCK: sock },
        stdio: "ignore",
      });
      const pool = poolWith(
        { IdentityAgent: sock },
        { identityFile: join(sshd.dir, "no-such-key") },
      );
      const l = await pool.acquire("h", "t");
      expect((await l.exec("echo via-agent")).stdout).toBe("via-agent\n");
      l.release();
    } finally {
      process.kill(pid, "SIGTERM");
    }
  });

  it("a wrong key is SSH_AUTH naming the user and key", { timeout: 30000 }, async () => {
    const pool = poolWith({}, { identityFile: sshd.unauthorizedKeyPath! });
    const err = await pool.acquire("h", "t").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "SSH_AUTH" });
    expect(String((err as Error).message)).toContain(
      `Authentication to ${sshd.user}@127.0.0.1:${sshd.port}`,
    );
    expect(String((err as Error).message)).toContain(sshd.unauthorizedKeyPath!);
  });

  it("an encrypted key needs its passphrase in the environment", { timeout: 30000 }, async () => {
    const pool = poolWith({}, { identityFile: sshd.encryptedKeyPath! });
    delete process.env[PASSPHRASE_ENV];
    await expect(pool.acquire("h", "t")).rejects.toMatchObject({
      code: "SSH_AUTH",
      message: expect.stringContaining(`$${PASSPHRASE_ENV} is not set`),
    });
    process.env[PASSPHRASE_ENV] = "wrong";
    await expect(pool.acquire("h", "t")).rejects.toMatchObject({
      code: "SSH_AUTH",
      message: expect.stringContaining("could not be decrypted"),
    });
    process.env[PASSPHRASE_ENV] = sshd.encryptedKeyPassphrase!;
    try {
      const l = await pool.acquire("h", "t");
      expect((await l.exec("echo enc")).stdout).toBe("enc\n");
      l.release();
    } finally {
      delete process.env[PASSPHRASE_ENV];
    }
  });

  it("an unreadable or missing key is a clear SSH_AUTH error before connecting", {
    timeout: 30000,
  }, async () => {
    const garbage = join(sshd.dir, "not-a-key");
    writeFileSync(garbage, "hello\n");
    await expect(poolWith({}, { identityFile: garbage }).acquire("h", "t")).rejects.toMatchObject({
      code: "SSH_AUTH",
      message: expect.stringContaining(`${garbage} is not a private key`),
    });
    const adir = join(sshd.dir, "a-dir");
    mkdirSync(adir, { recursive: true });
    await expect(poolWith({}, { identityFile: adir }).acquire("h", "t")).rejects.toMatchObject({
      message: expect.stringContaining("is not a regular file"),
    });
    await expect(
      poolWith({}, { identityFile: join(sshd.dir, "missing") }).acquire("h", "t"),
    ).rejects.toMatchObject({ message: expect.stringContaining("does not exist") });
  });

  it("malformed targets, unknown aliases and refused ports are clear errors and leave nothing open", {
    timeout: 30000,
  }, async () => {
    const pool = poolWith({});
    const before = listening(sshd);
    await expect(pool.acquire("user@", "t")).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(pool.acquire("h:99999", "t")).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining("1-65535"),
    });
    await expect(pool.acquire("nosuchalias", "t")).rejects.toMatchObject({
      code: "SSH_CONFIG",
      message: expect.stringMatching(
        /Unknown host `nosuchalias`: there is no `Host nosuchalias` entry in .*cfg/,
      ),
    });
    const free = sshd.port === 1 ? 2 : 1; // nothing listens on port 1
    await expect(pool.acquire(`127.0.0.1:${free}`, "t")).rejects.toMatchObject({
      code: "SSH_CONNECT",
      message: expect.stringContaining("connection refused"),
    });
    expect(pool.list()).toEqual([]);
    expect(listening(sshd)).toEqual(before);
  });

  it("a changed host key is refused naming the host and both fingerprints", {
    timeout: 30000,
  }, async () => {
    const pool = poolWith({}); // sshd.knownHostsPath has the key from the start
    const l = await pool.acquire("h", "t");
    l.release();
    const oldFp = execFileSync("ssh-keygen", ["-lf", sshd.knownHostsPath], {
      encoding: "utf8",
    }).split(" ")[1]!;
    await sshd.rotateHostKey();
    const newFp = execFileSync("ssh-keygen", ["-lf", join(sshd.dir, "host_ed25519.pub")], {
      encoding: "utf8",
    }).split(" ")[1]!;
    const err = await pool.acquire("h", "t").catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: "SSH_HOST_KEY",
      data: { host: `[127.0.0.1]:${sshd.port}`, presented: newFp },
    });
    const msg = (err as Error).message;
    expect(msg).toContain(`[127.0.0.1]:${sshd.port}`);
    expect(msg).toContain(oldFp);
    expect(msg).toContain(newFp);
    expect(msg).toContain("ssh-keygen -R");
    // the new key is accepted once known_hosts has it
    writeFileSync(sshd.knownHostsPath, `${sshd.hostKeyPublic}\n`);
  });
});

describe("ProxyJump", () => {
  let jump: Sshd;
  let target: Sshd;
  let refusing: Sshd;
  let configPath: string;
  beforeAll(async () => {
    [jump, target, refusing] = await Promise.all([
      startSshd(),
      startSshd(),
      startSshd({ extraConfig: ["AllowTcpForwarding no"] }),
    ]);
    // the target's key is authorized for the jump user as well, and known_hosts holds all three
    const kh = join(target.dir, "kh-all");
    writeFileSync(kh, `${[jump, target, refusing].map((s) => s.hostKeyPublic).join("\n")}\n`);
    const e = (alias: string, s: Sshd, extra: Record<string, string> = {}) =>
      entryFor(alias, s, extra, { userKnownHostsFile: kh });
    configPath = writeSshConfig(
      target.dir,
      [
        e("jump", jump),
        e("refusing", refusing),
        e("behind", target, { ProxyJump: "jump" }),
        e("behind2", target, { ProxyJump: "jump,jump" }),
        e("behind-refusing", target, { ProxyJump: "refusing" }),
      ],
      "jump_config",
    );
  }, 60000);
  afterAll(async () => {
    await Promise.all([jump?.stop(), target?.stop(), refusing?.stop()]);
  }, 30000);

  it("the jump host's side of its connection has Nagle's algorithm off too", {
    timeout: 30000,
  }, async () => {
    // the jump's sshd forwards the pool's small packets; with Nagle on it held them for ACKs
    const pool = new SshConnections({ configPath });
    try {
      await pool.acquire("behind", "t");
      const on = (port: number) => () => {
        const socks = sshdNodelay(port);
        return socks.length > 0 && socks.every((s) => s.nodelay === 1);
      };
      expect(await eventually(on(jump.port), 5000)).toBe(true);
      expect(await eventually(on(target.port), 5000)).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it("connects through one and through two hops", { timeout: 30000 }, async () => {
    const pool = new SshConnections({ configPath });
    try {
      const l = await pool.acquire("behind", "t");
      expect((await l.exec("echo via-jump")).stdout).toBe("via-jump\n");
      expect(pool.list()[0]).toMatchObject({ jumps: ["jump"], port: target.port });
      const l2 = await pool.acquire("behind2", "t");
      expect((await l2.exec("echo two")).stdout).toBe("two\n");
      expect(pool.list().find((c) => c.target === "behind2")!.jumps).toEqual(["jump", "jump"]);
      expect(readFileSync(jump.logPath, "utf8")).toMatch(/Accepted publickey/);
    } finally {
      await pool.close();
    }
  });

  it("a jump host that refuses forwarding is a clear error and leaves nothing listening", {
    timeout: 30000,
  }, async () => {
    const pool = new SshConnections({ configPath });
    const before = listening(jump, target, refusing);
    const err = await pool.acquire("behind-refusing", "t").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "SSH_CONNECT" });
    expect((err as Error).message).toMatch(
      /Jump host `refusing` could not open a connection to 127\.0\.0\.1:\d+ \(for `behind-refusing`\)/,
    );
    expect(pool.list()).toEqual([]);
    expect(listening(jump, target, refusing)).toEqual(before);
    await pool.close();
  });
});

describe("surviving", () => {
  let sshd: Sshd;
  let pool: SshConnections;
  const events: SidecarEvent[] = [];
  beforeAll(async () => {
    sshd = await startSshd();
    const bus = new EventBus();
    bus.on(["ssh"], (e) => events.push(e));
    const configPath = writeSshConfig(
      sshd.dir,
      [entryFor("h", sshd, { ServerAliveInterval: 1, ServerAliveCountMax: 2 })],
      "cfg-survive",
    );
    pool = new SshConnections({
      configPath,
      events: bus,
      reconnect: { initialMs: 50, maxMs: 500 },
    });
  }, 30000);
  afterAll(async () => {
    await pool?.close();
    await sshd?.stop();
  }, 30000);

  it("reconnects after the connection is killed, and says so in ssh.state events", {
    timeout: 30000,
  }, async () => {
    const l = await pool.acquire("h", "t");
    const conn = pool.list()[0]!;
    expect(conn.reconnects).toBe(0);
    await sshd.killConnections();
    expect(
      await eventually(() => pool.list()[0]!.reconnects === 1 && pool.list()[0]!.state === "ready"),
    ).toBe(true);
    expect((await l.exec("echo back")).stdout).toBe("back\n");
    const states = events.map((e) => e.data.state);
    expect(states).toContain("reconnecting");
    expect(states[states.length - 1]).toBe("ready");
    l.release();
  });

  it("an exec started while reconnecting waits for the new connection", {
    timeout: 30000,
  }, async () => {
    const l = await pool.acquire("h", "t");
    await sshd.restart();
    expect((await l.exec("echo after-restart")).stdout).toBe("after-restart\n");
    l.release();
  });

  it("a host key that changes across a reconnect stops the retries; a later acquire starts afresh", {
    timeout: 30000,
  }, async () => {
    const l = await pool.acquire("h", "t");
    const known = readFileSync(sshd.knownHostsPath, "utf8");
    await sshd.rotateHostKey(); // restarts sshd: the connection drops, the reconnect meets the new key
    expect(await eventually(() => pool.list()[0]!.state === "failed", 15000)).toBe(true);
    expect(events.some((e) => e.data.state === "failed")).toBe(true);
    await expect(l.exec("true")).rejects.toMatchObject({ code: "SSH_HOST_KEY" });
    writeFileSync(sshd.knownHostsPath, `${sshd.hostKeyPublic}\n`);
    const fresh = await pool.acquire("h", "t2");
    expect((await fresh.exec("echo fresh")).stdout).toBe("fresh\n");
    fresh.release();
    l.release();
    expect(known).not.toBe(readFileSync(sshd.knownHostsPath, "utf8"));
  });

  it("a hung connection is noticed by keepalive (interval x count) and replaced", {
    timeout: 30000,
  }, async () => {
    const l = await pool.acquire("h", "t");
    const gen = pool.list()[0]!.generation;
    const kids = childrenTree(sshd.pid);
    for (const k of kids) {
      try {
        process.kill(k, "SIGSTOP");
      } catch {
        // exited meanwhile
      }
    }
    try {
      expect(
        await eventually(
          () => pool.list()[0]!.generation > gen && pool.list()[0]!.state === "ready",
          15000,
        ),
      ).toBe(true);
      expect(pool.list()[0]!.last_error).toMatch(/Keepalive timeout/);
      expect((await l.exec("echo alive")).stdout).toBe("alive\n");
    } finally {
      for (const k of kids) {
        try {
          process.kill(k, "SIGKILL");
          process.kill(k, "SIGCONT");
        } catch {
          // gone
        }
      }
      l.release();
    }
  });
});
