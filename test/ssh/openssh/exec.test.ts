// Sessions through an OpenSSH ControlMaster against a real sshd: exit codes, stdout/stderr,
// stdin, a signal reported as the signal (session.sh; OpenSSH's client drops exit-signal), a
// timeout that kills the remote group, spawn, and many sessions at once under a low MaxSessions.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { stopAllAfterAll } from "../../testbed/hooks.js";
import { eventually, token } from "../helpers.js";
import { bedPerBlock, exec, spawnOn } from "./helpers.js";

stopAllAfterAll();

/** pids of `sleep 60TOKEN` processes (the sshd runs on this machine) */
function sleepers(tok: string): number[] {
  const r = spawnSync("pgrep", ["-f", `^sleep 60${tok}`], { encoding: "utf8" });
  return r.stdout.split("\n").filter(Boolean).map(Number);
}

function killSleepers(tok: string): void {
  for (const pid of sleepers(tok)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}

describe("exec through the master", () => {
  const h = bedPerBlock();

  it("returns exit code, stdout and stderr, with nothing of the transport in them", {
    timeout: 20000,
  }, async () => {
    const r = await exec(h.link, "echo out; echo err >&2; exit 3");
    expect(r).toMatchObject({
      exitCode: 3,
      signal: null,
      stdout: "out\n",
      stderr: "err\n",
      timedOut: false,
    });
    expect(await exec(h.link, "true")).toMatchObject({ exitCode: 0, stdout: "", stderr: "" });
    // 255 is the command's own code here, not a lost connection (ssh's own 255)
    expect(await exec(h.link, "exit 255")).toMatchObject({ exitCode: 255, signal: null });
  });

  it("passes stdin, env and cwd", { timeout: 20000 }, async () => {
    expect((await exec(h.link, "cat", { stdin: "line1\nline2" })).stdout).toBe("line1\nline2");
    const r = await exec(h.link, `printf '%s|' "$FOO" "$BAR"; pwd`, {
      env: { FOO: "a b'c $HOME", BAR: "" },
      cwd: "/tmp",
    });
    expect(r.stdout).toBe("a b'c $HOME||/tmp\n");
  });

  it("binary stdin and stdout pass unchanged, escape character included", {
    timeout: 20000,
  }, async () => {
    const data = Buffer.from(Array.from({ length: 256 * 64 }, (_, i) => i % 256));
    const withEscape = Buffer.concat([Buffer.from("\n~.\n"), data]);
    const { channel, release } = await h.link.exec("od -An -v -tx1 | tr -d ' \\n'", 20000);
    let out = "";
    channel.on("data", (b: Buffer) => (out += b.toString()));
    channel.end(withEscape);
    await new Promise((r) => channel.on("close", r));
    release();
    expect(out).toBe(withEscape.toString("hex"));
  });

  it("reports a signal as the signal, as the ssh2 transport does", { timeout: 20000 }, async () => {
    expect(await exec(h.link, "kill -KILL $$")).toMatchObject({
      exitCode: null,
      signal: "SIGKILL",
    });
    const r = await exec(h.link, "echo before >&2; kill -TERM $$");
    expect(r).toMatchObject({ exitCode: null, signal: "SIGTERM", stderr: "before\n" });
  });

  it("the channel emits exit (null, TERM) then close", { timeout: 20000 }, async () => {
    const { channel, release } = await h.link.exec("kill -TERM $$", 20000);
    const events: unknown[] = [];
    channel.on("exit", (...a: unknown[]) => events.push(["exit", ...a]));
    channel.resume();
    await new Promise<void>((r) =>
      channel.on("close", () => {
        events.push(["close"]);
        r();
      }),
    );
    release();
    expect(events).toEqual([["exit", null, "TERM"], ["close"]]);
  });

  it("a timeout kills the whole remote process group", { timeout: 30000 }, async () => {
    const tok = token();
    try {
      const r = await exec(h.link, `sleep 60${tok} & (sleep 60${tok} &); sleep 60${tok}`, {
        timeoutMs: 800,
      });
      expect(r.timedOut).toBe(true);
      expect(r.exitCode).toBeNull();
      expect(r.signal).toBe("SIGTERM");
      expect(await eventually(() => sleepers(tok).length === 0)).toBe(true);
    } finally {
      killSleepers(tok);
    }
  });

  it("spawn: its own process group, streams, kill() takes grandchildren too", {
    timeout: 30000,
  }, async () => {
    const tok = token();
    try {
      const p = await spawnOn(h.link, `cat; sleep 60${tok} & (sleep 60${tok} &); sleep 60${tok}`);
      const pgid = await p.pgid;
      expect(pgid).toBeGreaterThan(1);
      let out = "";
      p.stdout.on("data", (b: Buffer) => (out += b.toString()));
      p.stdin.end("hello\n");
      expect(await eventually(() => sleepers(tok).length === 3)).toBe(true);
      const groups = new Set(
        sleepers(tok).map((pid) =>
          Number(spawnSync("ps", ["-o", "pgid=", "-p", String(pid)], { encoding: "utf8" }).stdout),
        ),
      );
      expect([...groups]).toEqual([pgid]);
      await p.kill("SIGTERM");
      expect(await p.exited).toEqual({ exitCode: null, signal: "SIGTERM" });
      expect(out).toBe("hello\n");
      expect(await eventually(() => sleepers(tok).length === 0)).toBe(true);
    } finally {
      killSleepers(tok);
    }
  });

  it("counts its sessions in info()", { timeout: 20000 }, async () => {
    const { channel, release } = await h.link.exec("sleep 0.3", 20000);
    expect(h.link.info().sessions).toBe(1);
    channel.resume();
    channel.end();
    await new Promise((r) => channel.on("close", r));
    release();
    expect(h.link.info()).toMatchObject({ sessions: 0, transport: "openssh", state: "ready" });
  });
});

describe("many sessions at once on an sshd with MaxSessions 3", () => {
  const h = bedPerBlock({ sshd: { extraConfig: ["MaxSessions 3"] } });

  it("60 short commands at once all run: refusals are waited out", {
    timeout: 90000,
  }, async () => {
    const rs = await Promise.all(Array.from({ length: 60 }, (_, i) => exec(h.link, `echo ${i}`)));
    expect(rs.map((r) => r.stdout)).toEqual(Array.from({ length: 60 }, (_, i) => `${i}\n`));
    expect(h.link.info().sessions).toBe(0);
  });

  it("a server that stays full: a clear SSH_EXEC naming MaxSessions", {
    timeout: 40000,
  }, async () => {
    const tok = token();
    const busy = await Promise.all([1, 2, 3].map(() => spawnOn(h.link, `sleep 60${tok}`)));
    for (const p of busy) p.stdout.resume();
    try {
      await expect(h.link.exec("echo never", 3000)).rejects.toMatchObject({
        code: "SSH_EXEC",
        message: expect.stringMatching(/refused a new session channel for 3000 ms.*MaxSessions/),
      });
    } finally {
      killSleepers(tok);
    }
    for (const p of busy) expect(await p.exited).toMatchObject({ signal: "SIGKILL" });
    expect((await exec(h.link, "echo again")).stdout).toBe("again\n");
  });
});
