// src/remote/ssh/session.sh run with `sh` (no sshd), as sshd runs it (a session leader): the
// open line first on stderr, the command's own output, then how it ended (exit=N or
// signal=NAME) last; no "Terminated" note from the shell; and wrapper.sh under it still gets a
// process group of its own, so that killing that group leaves session.sh to report.
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { sessionCommand } from "../../../src/ssh/openssh/session.js";
import { wrapRemote } from "../../../src/ssh/remote-command.js";

interface Ran {
  pid: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `sh -c CMD` as a session leader (detached: setsid), as sshd starts a session's command */
function run(command: string, stdin?: string): Promise<Ran> {
  const c = spawn("/bin/sh", ["-c", command], { detached: true, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  c.stdout.on("data", (b: Buffer) => (stdout += b.toString("latin1")));
  c.stderr.on("data", (b: Buffer) => (stderr += b.toString("latin1")));
  c.stdin.end(stdin ?? "");
  return new Promise((r) => c.on("close", (code) => r({ pid: c.pid!, code, stdout, stderr })));
}

describe("session.sh", () => {
  it("reports the exit code last, the command's output untouched", async () => {
    const r = await run(sessionCommand("cat; echo err >&2; exit 7"), "in\n");
    expect(r.stdout).toBe("in\n");
    expect(r.stderr).toBe("\x1epsc:open\nerr\n\x1epsc:exit=7\n");
    expect(r.code).toBe(7);
  });

  it("reports a signal by name, without the shell's note", async () => {
    const term = await run(sessionCommand("echo before >&2; kill -TERM $$"));
    expect(term.stderr).toBe("\x1epsc:open\nbefore\n\x1epsc:signal=TERM\n");
    expect(term.code).toBe(143);
    const kill = await run(sessionCommand("kill -KILL $$"));
    expect(kill.stderr).toBe("\x1epsc:open\n\x1epsc:signal=KILL\n");
  });

  it("an exit above 143 is an exit, not a signal (qsub's 170 is not RTMIN+8)", async () => {
    for (const code of [144, 170, 255]) {
      const r = await run(sessionCommand(`exit ${code}`));
      expect(r.stderr).toBe(`\x1epsc:open\n\x1epsc:exit=${code}\n`);
      expect(r.code).toBe(code);
    }
  });

  it("the command does not hold session.sh's own descriptor (3)", async () => {
    const r = await run(sessionCommand("ls /proc/$$/fd"));
    expect(r.stdout.split("\n")).toContain("2");
    expect(r.stdout.split("\n")).not.toContain("3");
  });

  it("wrapper.sh under it leads a group of its own; killing that group is reported", async () => {
    const r = await run(
      sessionCommand(
        wrapRemote('read -r _ _ _ _ g _ < /proc/$$/stat; echo "$g"; kill -TERM -"$g"'),
      ),
    );
    const RS = "\x1e";
    const m = new RegExp(`^${RS}psc:open\n${RS}pgid=(\\d+)\n${RS}psc:signal=TERM\n$`).exec(
      r.stderr,
    );
    expect(m, r.stderr).not.toBeNull();
    expect(Number(m![1])).not.toBe(r.pid); // not session.sh's group
    expect(r.stdout).toBe(`${m![1]}\n`);
  });
});
