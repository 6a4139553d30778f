// src/remote/ssh/wrapper.sh run with `sh` (no sshd): the `\x1epgid=N` line first on stderr, the
// script run with its output and exit code; re-executed under setsid when its shell does not
// lead its process group (so N is a group of its own); without setsid(1) it goes on as it is.
// Also the command line wrapRemote builds around a cd/export prefix.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildScript, PGID_MARK, wrapRemote } from "../../../src/ssh/remote-command.js";
import { REMOTE } from "../helpers.js";

const WRAPPER = readFileSync(join(REMOTE, "ssh", "wrapper.sh"), "utf8");
// the script prints its pid, process group and session (fields 1, 5, 6 of /proc/PID/stat)
const WHO = 'read -r p _ _ _ g s _ < /proc/$$/stat; echo "$p $g $s"; echo err >&2; exit 7';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "psc-remote-wrap-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

interface Ran {
  pid: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(argv: string[], opts: { detached: boolean; env?: Record<string, string> }) {
  const c = spawn("/bin/sh", argv, {
    detached: opts.detached,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  c.stdout.on("data", (b: Buffer) => (stdout += b.toString("latin1")));
  c.stderr.on("data", (b: Buffer) => (stderr += b.toString("latin1")));
  return new Promise<Ran>((r) => c.on("close", (code) => r({ pid: c.pid!, code, stdout, stderr })));
}

/** The wrapper as wrapRemote sends it: `sh -c PROGRAM parsl-sidecar-wrapper SCRIPT`. */
const wrapper = (script: string) => ["-c", WRAPPER, "parsl-sidecar-wrapper", script];

const ourGroup = (): number =>
  Number(readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ")[2]);

describe("wrapper.sh", () => {
  it("as a group leader: the pgid line first on stderr, then the script as it is", async () => {
    const r = await run(wrapper(WHO), { detached: true });
    expect(r.stderr).toBe(`\x1epgid=${r.pid}\nerr\n`);
    expect(r.stdout).toBe(`${r.pid} ${r.pid} ${r.pid}\n`);
    expect(r.code).toBe(7);
  });

  it("not a group leader: re-executed under setsid, the script leads a group of its own", async () => {
    const r = await run(wrapper(WHO), { detached: false });
    const m = new RegExp(`^${PGID_MARK}(\\d+)\nerr\n$`).exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const pgid = Number(m![1]);
    expect(pgid).not.toBe(ourGroup());
    const [pid, group, session] = r.stdout.trim().split(" ").map(Number);
    expect([group, session]).toEqual([pgid, pgid]);
    expect(pid).toBe(pgid);
    expect(r.code).toBe(7);
  });

  it("without setsid(1): the pgid line all the same, the script in the caller's group", async () => {
    const bin = join(dir, "bin");
    mkdirSync(bin);
    symlinkSync("/bin/sh", join(bin, "sh"));
    const r = await run(wrapper(WHO), { detached: false, env: { PATH: bin } });
    expect(r.stderr).toBe(`\x1epgid=${r.pid}\nerr\n`);
    const [pid, group] = r.stdout.trim().split(" ").map(Number);
    expect([pid, group]).toEqual([r.pid, ourGroup()]);
  });

  it("wrapRemote's command line: the cd/export prefix with awkward values, then the script", async () => {
    const odd = join(dir, `a b 'c' "d" $e`);
    mkdirSync(odd);
    const script = buildScript('printf "%s|%s\\n" "$PWD" "$X"', {
      cwd: odd,
      env: { X: `it's "$HOME" \\ ok` },
    });
    const r = await run(["-c", wrapRemote(script)], { detached: true });
    expect(r.stderr).toBe(`\x1epgid=${r.pid}\n`);
    expect(r.stdout).toBe(`${odd}|it's "$HOME" \\ ok\n`);
    expect(r.code).toBe(0);
  });
});
