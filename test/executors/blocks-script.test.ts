// The shell a worker block runs under on a pool (survivingCommand), run here with sh: output
// still reaches the channel, the exit status and a killing signal are kept (and left, with the
// output, in files for a sidecar that lost the channel), the block outlives a channel that
// breaks (SIGPIPE), ended blocks' files are swept after a week; and the marker check
// (blockAliveFunction) finds a block's processes by their environment only.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BLOCK_MARK, blockAliveFunction, parseBlockStatus, survivingCommand } from "../../src/executors/blocks.js";

const home = mkdtempSync(join(tmpdir(), "psc-blk-home-"));
const env = { ...process.env, HOME: home };
const blocksDir = join(home, ".parsl-sidecar", "blocks");

afterAll(() => rmSync(home, { recursive: true, force: true }));

function run(script: string, extraEnv: Record<string, string> = {}): ReturnType<typeof spawnSync> {
  return spawnSync("sh", ["-c", script], { env: { ...env, ...extraEnv }, encoding: "utf8", timeout: 20_000 });
}

/** What block `id` left in the blocks directory: file suffix → content; then removes it. */
function takeLeft(id: string): Record<string, string> {
  const left: Record<string, string> = {};
  for (const f of readdirSync(blocksDir).filter((f) => f.startsWith(`${id}.`))) {
    const path = join(blocksDir, f);
    expect(statSync(path).mode & 0o077).toBe(0); // private to the user
    left[f.slice(id.length + 1)] = readFileSync(path, "utf8");
    rmSync(path);
  }
  return left;
}

describe("survivingCommand", () => {
  it("forwards stdout and stderr and keeps the exit status, also in its files", () => {
    const r = run(survivingCommand("blk-a1", "echo out; echo err >&2; exit 3"));
    expect(r.status).toBe(3);
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("err\n");
    // its output and status stay for the sidecar (it reads what it missed, then removes them)
    expect(takeLeft("blk-a1")).toEqual({ out: "out\n", err: "err\n", rc: "3 -\n" });
    expect(parseBlockStatus("3 -\n")).toEqual({ exitCode: 3, signal: null });
  });

  it("ends by the signal that ended the script, and leaves its name", () => {
    const r = run(survivingCommand("blk-a2", "kill -TERM $$"));
    expect(r.signal).toBe("SIGTERM");
    const left = takeLeft("blk-a2");
    expect(left.rc).toBe("143 TERM\n");
    expect(parseBlockStatus(left.rc!)).toEqual({ exitCode: null, signal: "SIGTERM" });
  });

  it("leaves the signal's name when its whole group gets a TERM (a cancel)", async () => {
    const child = spawn("sh", ["-c", survivingCommand("blk-a6", "echo up; sleep 30")], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once("exit", (_code, sig) => r(sig)));
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    process.kill(-child.pid!, "SIGTERM");
    expect(await exited).toBe(null); // its trap exits 143
    expect(child.exitCode).toBe(143);
    expect(takeLeft("blk-a6")).toEqual({ out: "up\n", err: "", rc: "143 TERM\n" });
  });

  it("removes the files of blocks that ended over a week ago, and of week-quiet blocks with no process left", async () => {
    const names = ["blk-old.rc", "blk-old.out", "blk-old.err", "blk-recent.rc", "blk-recent.out", "blk-killed.out", "blk-killed.err", "blk-live.out", "blk-live.err"];
    for (const f of names) writeFileSync(join(blocksDir, f), "x\n", { mode: 0o600 });
    const weeksAgo = Date.now() / 1000 - 9 * 86400;
    // ended over a week ago; SIGKILLed (no status) a week ago; still running, quiet for a week
    for (const f of ["blk-old.rc", "blk-killed.out", "blk-live.out"]) utimesSync(join(blocksDir, f), weeksAgo, weeksAgo);
    const live = spawn("sleep", ["30"], { env: { ...env, [BLOCK_MARK]: "blk-live" }, detached: true, stdio: "ignore" });
    try {
      await new Promise((r) => setTimeout(r, 200));
      expect(run(survivingCommand("blk-a5", "exit 0")).status).toBe(0);
      expect(readdirSync(blocksDir).sort()).toEqual(["blk-a5.err", "blk-a5.out", "blk-a5.rc", "blk-live.err", "blk-live.out", "blk-recent.out", "blk-recent.rc"]);
    } finally {
      live.kill("SIGKILL");
      for (const f of readdirSync(blocksDir)) rmSync(join(blocksDir, f));
    }
  });

  it("reads only a status line its shell could have written", () => {
    expect(parseBlockStatus("0 -")).toEqual({ exitCode: 0, signal: null });
    expect(parseBlockStatus("137 KILL")).toEqual({ exitCode: null, signal: "SIGKILL" });
    for (const bad of ["", "x -", "1", "1 -; rm", "1 term", "12345 -"]) expect(parseBlockStatus(bad)).toBeUndefined();
  });

  it("outlives a channel that breaks, finishes its work and keeps what it wrote", async () => {
    const done = join(home, "done");
    const script = survivingCommand("blk-a3", `echo first; sleep 1; for i in 1 2 3; do echo line $i; echo e$i >&2; done; echo ok > ${done}`);
    const child = spawn("sh", ["-c", script], { env, stdio: ["ignore", "pipe", "pipe"] });
    // listened for from the start: the shell may end while the loop below still polls
    const exited = new Promise((r) => child.once("exit", r));
    // read the first line, then close our ends: the channel is gone
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    child.stdout.destroy();
    child.stderr.destroy();
    const deadline = Date.now() + 15_000;
    while (!existsSync(done) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(done)).toBe(true);
    await exited;
    expect(takeLeft("blk-a3")).toEqual({ out: "first\nline 1\nline 2\nline 3\n", err: "e1\ne2\ne3\n", rc: "0 -\n" });
  });

  it("writes to the channel as before when its files cannot be made", () => {
    const r = spawnSync("sh", ["-c", survivingCommand("blk-a4", "echo direct; exit 4")], { env: { ...process.env, HOME: "/proc" }, encoding: "utf8" });
    expect(r.status).toBe(4);
    expect(r.stdout).toBe("direct\n");
  });

  it("refuses an id that is not a plain word", () => {
    expect(() => survivingCommand("x; rm -rf /", "true")).toThrow(/block id/);
  });
});

describe("blockAliveFunction", () => {
  it("finds a process by the block's marker in its environment, not by its group id alone", async () => {
    const child = spawn("sleep", ["30"], { env: { ...env, [BLOCK_MARK]: "blk-b1" }, detached: true, stdio: "ignore" });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const ask = (id: string, pgid: number): string => run(`${blockAliveFunction(id, pgid)}\nif alive; then echo alive; else echo gone; fi`).stdout as string;
      expect(ask("blk-b1", child.pid!)).toBe("alive\n");
      // the same group id, another block: not taken for it (Linux /proc + grep -z here)
      expect(ask("blk-other", child.pid!)).toBe("gone\n");
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("refuses a group id that is not one", () => {
    expect(() => blockAliveFunction("blk-b2", 1)).toThrow(/process group/);
  });
});
