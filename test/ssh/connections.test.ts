// SshConnections against a real OpenSSH sshd: exec (exit codes, stderr, stdin, env, cwd,
// timeout), spawn with process-group kill, and one shared connection per target.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { FIRST_SESSION_DELAY_MS } from "../../src/ssh/first-session.js";
import { isSshLease } from "../../src/ssh/connections.js";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { makeTempDir } from "../testbed/registry.js";
import { eventually, poolPerBlock, sshdNodelay, sshSetup, token } from "./helpers.js";

stopAllAfterAll();

describe("SshConnections exec and spawn", () => {
  const bed = poolPerBlock();

  const running = async (tok: string): Promise<string> =>
    (await bed.lease.exec(`pgrep -f '^sleep 60${tok}' || true`)).stdout.trim();

  it("returns exit code, stdout and stderr in one shape", { timeout: 20000 }, async () => {
    const r = await bed.lease.exec("echo out; echo err >&2; exit 3");
    expect(r).toMatchObject({
      exitCode: 3,
      signal: null,
      stdout: "out\n",
      stderr: "err\n",
      timedOut: false,
    });
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
    const ok = await bed.lease.exec("true");
    expect(ok).toMatchObject({
      exitCode: 0,
      signal: null,
      stdout: "",
      stderr: "",
      timedOut: false,
    });
  });

  it("passes stdin, env and cwd", { timeout: 20000 }, async () => {
    expect((await bed.lease.exec("cat", { stdin: "line1\nline2" })).stdout).toBe("line1\nline2");
    const r = await bed.lease.exec(`printf '%s|' "$FOO" "$BAR"; pwd`, {
      env: { FOO: "a b'c $HOME", BAR: "" },
      cwd: "/tmp",
    });
    expect(r.stdout).toBe("a b'c $HOME||/tmp\n");
    const bad = await bed.lease.exec("pwd", { cwd: "/does/not/exist" });
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toMatch(/does\/not\/exist/);
  });

  it("a connection keeps nothing of the commands it carried once they end", {
    timeout: 30000,
  }, async () => {
    if (!isSshLease(bed.lease)) throw new Error("expected an SSH lease");
    const conn = bed.lease.connection;
    // each open channel waits for the connection's end, to close itself if it goes first
    const p = await bed.lease.spawn("sleep 30");
    p.stdout.resume();
    p.stderr.resume();
    await p.pgid;
    expect(conn.endWaiters).toBe(1);
    for (let i = 0; i < 30; i++) await bed.lease.exec(`echo ${i}`);
    await Promise.all([1, 2, 3].map(() => bed.lease.exec("true")));
    expect(conn.endWaiters).toBe(1);
    await p.kill("SIGTERM");
    await p.exited;
    expect(await eventually(() => conn.endWaiters === 0, 5000)).toBe(true);
  });

  it("rejects a bad environment variable name", { timeout: 20000 }, async () => {
    await expect(bed.lease.exec("true", { env: { "A-B": "x" } })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
  });

  it("reports a signal as the signal", { timeout: 20000 }, async () => {
    const r = await bed.lease.exec("kill -KILL $$");
    expect(r.exitCode).toBeNull();
    expect(r.signal).toBe("SIGKILL");
  });

  it("a timeout kills the whole remote process group", { timeout: 30000 }, async () => {
    const tok = token();
    const r = await bed.lease.exec(`sleep 60${tok} & (sleep 60${tok} &); sleep 60${tok}`, {
      timeoutMs: 800,
    });
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).toBeNull();
    expect(await eventually(async () => (await running(tok)) === "")).toBe(true);
  });

  it("spawn runs in its own process group and kill() takes grandchildren too", {
    timeout: 30000,
  }, async () => {
    const tok = token();
    const p = await bed.lease.spawn(
      `echo started; sleep 60${tok} & (sleep 60${tok} &); sleep 60${tok}`,
    );
    const pgid = await p.pgid;
    expect(pgid).toBeGreaterThan(1);
    const first = await new Promise<string>((resolve) =>
      p.stdout.once("data", (b: Buffer) => resolve(b.toString())),
    );
    expect(first).toBe("started\n");
    expect(await eventually(async () => (await running(tok)).split("\n").length === 3)).toBe(true);
    const groups = await bed.lease.exec(
      `ps -o pgid= -p $(pgrep -d, -f '^sleep 60${tok}') | sort -u`,
    );
    expect(groups.stdout.trim()).toBe(String(pgid));
    await p.kill("SIGTERM");
    const exit = await p.exited;
    expect(exit.signal).toBe("SIGTERM");
    expect(await eventually(async () => (await running(tok)) === "")).toBe(true);
  });

  it("spawn streams stdin to stdout and keeps stderr clean of the pgid line", {
    timeout: 20000,
  }, async () => {
    const p = await bed.lease.spawn("cat; echo done >&2");
    let out = "";
    let err = "";
    p.stdout.on("data", (b: Buffer) => (out += b.toString()));
    p.stderr.on("data", (b: Buffer) => (err += b.toString()));
    p.stdin.end("hello");
    expect(await p.exited).toEqual({ exitCode: 0, signal: null });
    expect(out).toBe("hello");
    expect(err).toBe("done\n");
  });

  it("a burst of short commands: all run, though sshd frees closed sessions a moment late", {
    timeout: 60000,
  }, async () => {
    // with this side at its limit, an open sent right behind a close found sshd still full (some failed in each of 3 runs before)
    const burst = await bed.s.pool.acquire("pool", "burst");
    try {
      const rs = await Promise.all(Array.from({ length: 60 }, (_, i) => burst.exec(`echo ${i}`)));
      expect(rs.map((r) => r.stdout)).toEqual(Array.from({ length: 60 }, (_, i) => `${i}\n`));
    } finally {
      burst.release();
    }
  });

  it("shares one connection per target and closes it with the last lease", {
    timeout: 20000,
  }, async () => {
    const a = await bed.s.pool.acquire("pool", "a");
    const b = await bed.s.pool.acquire("pool", "b");
    expect(isSshLease(a) && isSshLease(b) && a.connection === b.connection).toBe(true);
    const info = bed.s.pool.list().find((c) => c.target === "pool")!;
    expect(info.leases).toBe(3);
    expect(info.owners.sort()).toEqual(["a", "b", "test"]);
    expect(info.state).toBe("ready");
    expect(info.server_version).toMatch(/OpenSSH/);
    expect(info.fingerprint).toMatch(/^SHA256:/);
    expect(info.cipher).toMatch(/aes128-gcm|chacha20/);
    a.release();
    b.release();
    b.release(); // twice is harmless
    expect(bed.s.pool.list().find((c) => c.target === "pool")!.leases).toBe(1);
  });

  it("closes the connection when the last lease is released", { timeout: 20000 }, async () => {
    const other = await bed.s.pool
      .acquire(`${bed.s.sshd.user}@${bed.s.sshd.host}:${bed.s.sshd.port}`, "x")
      .catch((e: unknown) => e);
    // a raw target has no IdentityFile/known_hosts from the config: refused, and nothing kept open
    expect(other).toMatchObject({ code: expect.stringMatching(/SSH_AUTH|SSH_HOST_KEY/) });
    expect(bed.s.pool.list().map((c) => c.target)).toEqual(["pool"]);
  });

  it("two large putFiles (SFTP) transfer in parallel on one connection (ssh2 #485 trap)", {
    timeout: 60000,
  }, async () => {
    if (!isSshLease(bed.lease)) throw new Error("expected an ssh lease");
    const { writeFileSync, readFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const src = join(bed.s.sshd.dir, "big.bin");
    const data = Buffer.alloc(8 << 20);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
    writeFileSync(src, data);
    const link = bed.lease.connection;
    await Promise.all([
      link.putFile(src, join(bed.s.sshd.dir, "copy-a")),
      link.putFile(src, join(bed.s.sshd.dir, "copy-b")),
    ]);
    expect(readFileSync(join(bed.s.sshd.dir, "copy-a")).equals(data)).toBe(true);
    expect(readFileSync(join(bed.s.sshd.dir, "copy-b")).equals(data)).toBe(true);
  });

  it("gives putFile and connect to other modules", { timeout: 20000 }, async () => {
    if (!isSshLease(bed.lease)) throw new Error("expected an ssh lease");
    const { readFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const dst = join(bed.s.sshd.dir, "config-copy");
    await bed.lease.connection.putFile(join(bed.s.sshd.dir, "sshd_config"), dst);
    expect(readFileSync(dst, "utf8")).toBe(
      readFileSync(join(bed.s.sshd.dir, "sshd_config"), "utf8"),
    );
    const ch = await bed.lease.connection.connect(bed.s.sshd.host, bed.s.sshd.port, 10000);
    const banner = await new Promise<string>((res) =>
      ch.once("data", (b: Buffer) => res(b.toString())),
    );
    expect(banner).toMatch(/^SSH-2.0-OpenSSH/);
    ch.destroy();
  });
});

describe("local host", () => {
  it("exec and spawn with group kill", { timeout: 20000 }, async () => {
    const { SshConnections } = await import("../../src/ssh/connections.js");
    const pool = new SshConnections();
    const local = await pool.acquire("local", "t");
    expect(local.isLocal).toBe(true);
    const r = await local.exec("echo $FOO; cat; exit 4", { env: { FOO: "bar" }, stdin: "in" });
    expect(r).toMatchObject({ exitCode: 4, stdout: "bar\nin", timedOut: false });
    const tok = token();
    const t = await local.exec(`sleep 60${tok} & sleep 60${tok}`, { timeoutMs: 300 });
    expect(t.timedOut).toBe(true);
    const p = await local.spawn(`(sleep 60${tok} &); sleep 60${tok}`);
    expect(await p.pgid).toBeGreaterThan(1);
    await p.kill();
    await p.exited;
    expect(
      await eventually(
        async () => (await local.exec(`pgrep -f '^sleep 60${tok}' || true`)).stdout.trim() === "",
      ),
    ).toBe(true);
    local.release();
    await pool.close();
  });
});

describe("a connection that dies under running commands", () => {
  it("spawn reports its end, ended(gen) resolves, and the pool serves again", {
    timeout: 40000,
  }, async () => {
    const s = await sshSetup();
    const lease = await s.pool.acquire("pool", "test");
    try {
      if (!isSshLease(lease)) throw new Error("expected an SSH lease");
      const conn = lease.connection;
      const gen = conn.generation;
      const ended = conn.ended(gen);
      const p = await lease.spawn("sleep 60");
      expect(await p.pgid).toBeGreaterThan(1);
      await s.sshd.killConnections();
      // no exit status came: the connection dropped, and the process may live on there
      expect(await p.exited).toEqual({ exitCode: null, signal: null, lost: true });
      await ended;
      await expect(conn.ended(gen)).resolves.toBeUndefined(); // a past generation: at once
      expect(
        await eventually(
          async () =>
            (await lease.exec("echo back").catch(() => ({ stdout: "" }))).stdout === "back\n",
        ),
      ).toBe(true);
      expect(conn.generation).toBeGreaterThan(gen);
    } finally {
      lease.release();
      await s.pool.close();
      await s.sshd.stop();
    }
  });
});

describe("sshd refusing a session channel (its MaxSessions reached)", () => {
  // an admin's MaxSessions below ours: "Channel open failure" is waited out, then named
  const bed = poolPerBlock({
    sshd: { extraConfig: ["MaxSessions 3"] },
    pool: { waitReadyMs: 8000 },
  });

  it("a command waits for a session the server frees, then runs", { timeout: 30000 }, async () => {
    const busy = await Promise.all([1, 2, 3].map(() => bed.lease.spawn("sleep 1.5")));
    for (const p of busy) p.stdout.resume();
    const started = Date.now();
    const r = await bed.lease.exec("echo ran");
    expect(r).toMatchObject({ exitCode: 0, stdout: "ran\n" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000); // it did wait for one to end
    for (const p of busy) expect(await p.exited).toMatchObject({ exitCode: 0 });
  });

  it("after the wait, a clear SSH_EXEC naming MaxSessions", { timeout: 30000 }, async () => {
    const tok = token();
    const busy = await Promise.all([1, 2, 3].map(() => bed.lease.spawn(`sleep 60${tok}`)));
    for (const p of busy) p.stdout.resume();
    try {
      await expect(bed.lease.exec("echo never")).rejects.toMatchObject({
        code: "SSH_EXEC",
        message: expect.stringMatching(/refused a new session channel for 8000 ms.*MaxSessions/),
      });
    } finally {
      // signalling the group would need a session too: the sshd runs here, so kill them from here
      spawnSync("pkill", ["-f", `^sleep 60${tok}`]);
    }
    for (const p of busy) expect(await p.exited).not.toHaveProperty("lost");
    expect((await bed.lease.exec("echo again")).stdout).toBe("again\n");
  });
});

// bash sources ~/.bashrc for a command sshd starts, before the wrapper runs: module systems,
// conda and pyenv write lines there that used to take the place of the pgid line, and the
// sidecar then could not kill what it started
describe("a pool whose login shell writes to stderr before the command runs", () => {
  const home = makeTempDir("rc-home");
  writeFileSync(join(home, ".bashrc"), 'echo "rc: Module foo loaded" >&2\necho "rc: two" >&2\n');
  const bed = poolPerBlock({ sshd: { extraConfig: [`SetEnv HOME=${home}`] } });

  it("exec: its stderr is the rc lines, then the command's; a timeout still kills its group", {
    timeout: 30000,
  }, async () => {
    const r = await bed.lease.exec("echo err >&2; exit 4");
    expect(r).toMatchObject({ exitCode: 4, stderr: "rc: Module foo loaded\nrc: two\nerr\n" });
    const tok = token();
    try {
      const t = await bed.lease.exec(`sleep 60${tok} & sleep 60${tok}`, { timeoutMs: 800 });
      expect(t.timedOut).toBe(true);
      const left = async () =>
        (await bed.lease.exec(`pgrep -f '^sleep 60${tok}' || true`)).stdout.trim();
      expect(await eventually(async () => (await left()) === "")).toBe(true);
    } finally {
      // without the fix nothing could kill them
      spawnSync("pkill", ["-KILL", "-f", `^sleep 60${tok}`]);
    }
  });

  it("spawn: the pgid is known and kill() ends the group", { timeout: 30000 }, async () => {
    const tok = token();
    try {
      const p = await bed.lease.spawn(`sleep 60${tok} & sleep 60${tok}`);
      let err = "";
      p.stderr.on("data", (b: Buffer) => (err += b.toString()));
      p.stdout.resume();
      expect(await p.pgid).toBeGreaterThan(1);
      await p.kill("SIGTERM");
      expect((await p.exited).signal).toBe("SIGTERM");
      expect(err).toBe("rc: Module foo loaded\nrc: two\n");
      const left = await bed.lease.exec(`pgrep -f '^sleep 60${tok}' || true`);
      expect(left.stdout.trim()).toBe("");
    } finally {
      spawnSync("pkill", ["-KILL", "-f", `^sleep 60${tok}`]);
    }
  });
});

// sshd sets TCP_NODELAY on a connection only when its first session starts; a connection that
// carried only forwards stalled Parsl's small messages for delayed ACKs (first-session.ts)
describe("sshd's side of every connection has Nagle's algorithm off", () => {
  const bed = poolPerBlock();
  const nodelay = () => sshdNodelay(bed.s.sshd.port);
  const allOn = (): boolean => {
    const socks = nodelay();
    return socks.length > 0 && socks.every((s) => s.nodelay === 1);
  };

  it("on the first connection and after a reconnect, though no command ran", {
    timeout: 40000,
  }, async () => {
    if (!isSshLease(bed.lease)) throw new Error("expected an SSH lease");
    const conn = bed.lease.connection;
    // the premise, seen through the same probe: OpenSSH's own `ssh -N` leaves it on
    const before = new Set(nodelay().map((s) => s.peer_port));
    const plain = spawn(
      "ssh",
      [...bed.s.sshd.sshArgs().slice(0, -1), "-N", bed.s.sshd.sshArgs().at(-1)!],
      {
        stdio: "ignore",
      },
    );
    try {
      expect(await eventually(() => nodelay().some((s) => !before.has(s.peer_port)), 10000)).toBe(
        true,
      );
      expect(nodelay().filter((s) => !before.has(s.peer_port))).toMatchObject([{ nodelay: 0 }]);
    } finally {
      plain.kill();
    }
    expect(await eventually(() => nodelay().length === before.size, 10000)).toBe(true);
    expect(await eventually(allOn, 5000)).toBe(true);
    const gen = conn.generation;
    await bed.s.sshd.killConnections();
    expect(await eventually(() => conn.generation > gen, 15000)).toBe(true);
    expect(await eventually(allOn, 5000)).toBe(true);
  });

  it("the empty session runs only where no command ran in the first second", {
    timeout: 30000,
  }, async () => {
    const s = await sshSetup();
    const sessions = (): number =>
      (readFileSync(s.sshd.logPath, "utf8").match(/Starting session: command/g) ?? []).length;
    try {
      // idle: the empty session is the connection's one session
      const idle = await s.pool.acquire("pool", "t");
      await sleep(FIRST_SESSION_DELAY_MS + 1000);
      expect(sessions()).toBe(1);
      idle.release();
      expect(await eventually(() => s.pool.list().length === 0, 5000)).toBe(true);
      // a command at once: it is the only session of the new connection
      const busy = await s.pool.acquire("pool", "t");
      await busy.exec("true");
      await sleep(FIRST_SESSION_DELAY_MS + 1000);
      expect(sessions()).toBe(2);
      expect(sshdNodelay(s.sshd.port)).toMatchObject([{ nodelay: 1 }]);
      busy.release();
    } finally {
      await s.pool.close();
      await s.sshd.stop();
    }
  });
});
