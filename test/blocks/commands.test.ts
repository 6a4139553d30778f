// The shell a worker block runs under on a pool (survivingCommand, block.sh `run`), run here with
// sh: output still reaches the channel, the exit status and a killing signal are kept (and left,
// with the output, in files for a sidecar that lost the channel), the block outlives a channel
// that breaks (SIGPIPE), ended blocks' files are swept after a week; and the marker check
// (lookCommand, block.sh `look`) finds a block's processes by their environment only.
import { spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseBlockStatus } from "../../src/blocks/block.js";
import { BLOCK_MARK, lookCommand, survivingCommand } from "../../src/blocks/commands.js";

const home = mkdtempSync(join(tmpdir(), "psc-blk-home-"));
const env = { ...process.env, HOME: home };
const blocksDir = join(home, ".parsl-sidecar", "blocks");
const host = `${hostname()}\n`; // what `uname -n` prints

afterAll(() => rmSync(home, { recursive: true, force: true }));

function run(script: string, extraEnv: Record<string, string> = {}): ReturnType<typeof spawnSync> {
  return spawnSync("sh", ["-c", script], {
    env: { ...env, ...extraEnv },
    encoding: "utf8",
    timeout: 20_000,
  });
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
    expect(takeLeft("blk-a1")).toEqual({ out: "out\n", err: "err\n", rc: "3 -\n", host });
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
    const child = spawn("sh", ["-c", survivingCommand("blk-a6", "echo up; sleep 30")], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const exited = new Promise<NodeJS.Signals | null>((r) =>
      child.once("exit", (_code, sig) => r(sig)),
    );
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    process.kill(-child.pid!, "SIGTERM");
    expect(await exited).toBe(null); // its trap exits 143
    expect(child.exitCode).toBe(143);
    expect(takeLeft("blk-a6")).toEqual({ out: "up\n", err: "", rc: "143 TERM\n", host });
  });

  it("removes the files of blocks that ended over a week ago, and of week-quiet blocks of this host with no process left", async () => {
    const files: Record<string, string> = {
      "blk-old.rc": "0 -\n",
      "blk-old.out": "x\n",
      "blk-old.err": "x\n",
      "blk-old.host": host,
      "blk-recent.rc": "0 -\n",
      "blk-recent.out": "x\n",
      "blk-killed.out": "x\n",
      "blk-killed.err": "x\n",
      "blk-killed.host": host,
      "blk-live.out": "x\n",
      "blk-live.err": "x\n",
      "blk-live.host": host,
      // another login node sharing this home runs it: nothing here can tell whether it lives
      "blk-remote.out": "x\n",
      "blk-remote.host": "login9\n",
    };
    for (const [f, text] of Object.entries(files))
      writeFileSync(join(blocksDir, f), text, { mode: 0o600 });
    const weeksAgo = Date.now() / 1000 - 9 * 86400;
    // ended over a week ago; SIGKILLed (no status) a week ago; still running, quiet for a week
    for (const f of ["blk-old.rc", "blk-killed.out", "blk-live.out", "blk-remote.out"])
      utimesSync(join(blocksDir, f), weeksAgo, weeksAgo);
    const live = spawn("sleep", ["30"], {
      env: { ...env, [BLOCK_MARK]: "blk-live" },
      detached: true,
      stdio: "ignore",
    });
    try {
      await new Promise((r) => setTimeout(r, 200));
      expect(run(survivingCommand("blk-a5", "exit 0")).status).toBe(0);
      expect(readdirSync(blocksDir).sort()).toEqual([
        "blk-a5.err",
        "blk-a5.host",
        "blk-a5.out",
        "blk-a5.rc",
        "blk-live.err",
        "blk-live.host",
        "blk-live.out",
        "blk-recent.out",
        "blk-recent.rc",
        "blk-remote.host",
        "blk-remote.out",
      ]);
    } finally {
      live.kill("SIGKILL");
      for (const f of readdirSync(blocksDir)) rmSync(join(blocksDir, f));
    }
  });

  it("reads only a status line its shell could have written", () => {
    expect(parseBlockStatus("0 -")).toEqual({ exitCode: 0, signal: null });
    expect(parseBlockStatus("137 KILL")).toEqual({ exitCode: null, signal: "SIGKILL" });
    for (const bad of ["", "x -", "1", "1 -; rm", "1 term", "12345 -"])
      expect(parseBlockStatus(bad)).toBeUndefined();
  });

  it("outlives a channel that breaks, finishes its work and keeps what it wrote", async () => {
    const done = join(home, "done");
    const script = survivingCommand(
      "blk-a3",
      `echo first; sleep 1; for i in 1 2 3; do echo line $i; echo e$i >&2; done; echo ok > ${done}`,
    );
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
    expect(takeLeft("blk-a3")).toEqual({
      out: "first\nline 1\nline 2\nline 3\n",
      err: "e1\ne2\ne3\n",
      rc: "0 -\n",
      host,
    });
  });

  it("writes to the channel as before when its files cannot be made", () => {
    const r = spawnSync("sh", ["-c", survivingCommand("blk-a4", "echo direct; exit 4")], {
      env: { ...process.env, HOME: "/proc" },
      encoding: "utf8",
    });
    expect(r.status).toBe(4);
    expect(r.stdout).toBe("direct\n");
  });

  it("refuses an id that is not a plain word", () => {
    expect(() => survivingCommand("x; rm -rf /", "true")).toThrow(/block id/);
  });
});

describe("lookCommand", () => {
  it("finds a process by the block's marker in its environment, not by its group id alone", async () => {
    const child = spawn("sleep", ["30"], {
      env: { ...env, [BLOCK_MARK]: "blk-b1" },
      detached: true,
      stdio: "ignore",
    });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const ask = (id: string, pgid: number): string => run(lookCommand(id, pgid)).stdout as string;
      expect(ask("blk-b1", child.pid!)).toBe("alive\n");
      // the same group id, another block: not taken for it (Linux /proc + grep -z here)
      expect(ask("blk-other", child.pid!)).toBe("gone\n");
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("a look tells alive, gone with the status left, and a block another host runs", async () => {
    const child = spawn("sleep", ["30"], {
      env: { ...env, [BLOCK_MARK]: "blk-b3" },
      detached: true,
      stdio: "ignore",
    });
    const look = (id: string, pgid: number): string => run(lookCommand(id, pgid)).stdout as string;
    try {
      await new Promise((r) => setTimeout(r, 200));
      writeFileSync(join(blocksDir, "blk-b3.host"), host, { mode: 0o600 });
      expect(look("blk-b3", child.pid!)).toBe("alive\n");
      // recorded by a shell on another login node that shares this home: not taken for gone
      writeFileSync(join(blocksDir, "blk-b3.host"), "login9\n", { mode: 0o600 });
      expect(look("blk-b3", child.pid!)).toBe("elsewhere\n");
    } finally {
      child.kill("SIGKILL");
    }
    writeFileSync(join(blocksDir, "blk-b4.host"), host, { mode: 0o600 });
    writeFileSync(join(blocksDir, "blk-b4.rc"), "7 -\n", { mode: 0o600 });
    expect(look("blk-b4", child.pid!)).toBe("gone\n7 -\n");
    for (const f of readdirSync(blocksDir)) rmSync(join(blocksDir, f));
  });

  it("refuses a group id that is not one", () => {
    expect(() => lookCommand("blk-b2", 1)).toThrow(/process group/);
  });
});
