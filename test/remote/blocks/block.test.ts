// src/remote/blocks/block.sh run directly with `sh` (no sshd, no sidecar), each command with its
// arguments as the sidecar passes them: `run` writes the block's files and exits with its
// script's status (or dies of its signal), `look` tells alive / gone / elsewhere, `signal` hits
// only a group that carries the block's marker, `rest` and `follow` print from byte offsets,
// `remove` removes the files, and the sweep removes only week-old ones.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
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
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { alive } from "../../testbed/procs.js";
import { REMOTE, waitUntil } from "../helpers.js";

const BLOCK = join(REMOTE, "blocks", "block.sh");
const host = `${hostname()}\n`; // what `uname -n` prints

let home: string;
let dir: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "psc-block-"));
  dir = join(home, ".parsl-sidecar", "blocks");
});
afterEach(() => {
  for (const c of children.splice(0)) {
    try {
      process.kill(-c.pid!, "SIGKILL");
    } catch {
      // gone already
    }
  }
  rmSync(home, { recursive: true, force: true });
});

/** block.sh with `args`, as the pool's sh runs it. */
function block(...args: (string | number)[]) {
  return spawnSync("sh", [BLOCK, ...args.map(String)], {
    cwd: home,
    env: { ...process.env, HOME: home },
    encoding: "utf8",
    timeout: 20_000,
  });
}

/** block.sh without blocking this process, which must reap a group's leader for it to end. */
function blockAsync(
  ...args: (string | number)[]
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn("sh", [BLOCK, ...args.map(String)], {
    cwd: home,
    env: { ...process.env, HOME: home },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) =>
    child.on("close", (status) => resolve({ status, stdout, stderr })),
  );
}

/** The block's files: suffix -> content. */
function files(id: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir).filter((f) => f.startsWith(`${id}.`))) {
    expect(statSync(join(dir, f)).mode & 0o077).toBe(0);
    out[f.slice(id.length + 1)] = readFileSync(join(dir, f), "utf8");
  }
  return out;
}

function write(name: string, text: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, name), text, { mode: 0o600 });
}

/** A process group led by `sh -c script`, with `env` (a block's marker) in its environment. */
function group(script: string, env: Record<string, string> = {}): ChildProcess {
  const child = spawn("sh", ["-c", script], {
    detached: true,
    stdio: "ignore",
    env: { ...process.env, HOME: home, ...env },
  });
  children.push(child);
  return child;
}

/** Let a just-spawned process exec and its environment show in /proc. */
const settle = () => new Promise((r) => setTimeout(r, 200));

describe("block.sh run", () => {
  it("exits 0 and leaves output, status and host", () => {
    const r = block("run", "blk-r0", "echo out; echo err >&2");
    expect([r.status, r.stdout, r.stderr]).toEqual([0, "out\n", "err\n"]);
    expect(files("blk-r0")).toEqual({ out: "out\n", err: "err\n", rc: "0 -\n", host });
  });

  it("exits with its script's status", () => {
    const r = block("run", "blk-r3", "echo partial; exit 3");
    expect(r.status).toBe(3);
    expect(files("blk-r3").rc).toBe("3 -\n");
  });

  it("dies of the signal that killed its script, and names it", () => {
    const r = block("run", "blk-rk", "kill -KILL $$");
    expect(r.signal).toBe("SIGKILL");
    expect(files("blk-rk").rc).toBe("137 KILL\n");
    const t = block("run", "blk-rt", "kill -TERM $$");
    expect(t.signal).toBe("SIGTERM");
    expect(files("blk-rt").rc).toBe("143 TERM\n");
  });

  it("runs its script as data, with bash, whatever quotes and $ it holds", () => {
    const script = `printf '%s|' "it's" '$HOME' "\\$0=$0"; [[ -n x ]] && echo bash`;
    const r = block("run", "blk-rq", script);
    expect(r.stdout).toBe("it's|$HOME|$0=bash|bash\n");
  });

  it("refuses an id that could name another file", () => {
    const r = block("run", "../x", "touch pwned");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/block id/);
    expect(existsSync(join(home, "pwned"))).toBe(false);
  });

  it("sweeps only the files of blocks that ended over a week ago", () => {
    write("blk-old.rc", "0 -\n");
    write("blk-old.out", "x\n");
    write("blk-old.err", "x\n");
    write("blk-old.host", host);
    write("blk-new.rc", "0 -\n");
    write("blk-new.out", "x\n");
    const weekAgo = Date.now() / 1000 - 8 * 86400;
    utimesSync(join(dir, "blk-old.rc"), weekAgo, weekAgo);
    utimesSync(join(dir, "blk-new.out"), weekAgo, weekAgo);
    expect(block("run", "blk-sw", "true").status).toBe(0);
    expect(readdirSync(dir).sort()).toEqual([
      "blk-new.out",
      "blk-new.rc",
      "blk-sw.err",
      "blk-sw.host",
      "blk-sw.out",
      "blk-sw.rc",
    ]);
  });
});

describe("block.sh look", () => {
  it("says alive while a process carries the block's marker, gone (with its status) after", async () => {
    const g = group("sleep 30", { PARSL_SIDECAR_BLOCK: "blk-l1" });
    await settle();
    write("blk-l1.host", host);
    expect(block("look", "blk-l1", g.pid!).stdout).toBe("alive\n");
    // the same group id under another block's name: not it
    expect(block("look", "blk-l2", g.pid!).stdout).toBe("gone\n");
    process.kill(-g.pid!, "SIGKILL");
    await waitUntil(() => !alive(g.pid!) || undefined, 5000, "the group gone");
    write("blk-l1.rc", "137 KILL\n");
    const r = block("look", "blk-l1", g.pid!);
    expect([r.status, r.stdout]).toEqual([0, "gone\n137 KILL\n"]);
  });

  it("says elsewhere when another host runs the block", async () => {
    const g = group("sleep 30", { PARSL_SIDECAR_BLOCK: "blk-l3" });
    await settle();
    write("blk-l3.host", "login9\n");
    expect(block("look", "blk-l3", g.pid!).stdout).toBe("elsewhere\n");
  });

  it("refuses a group id that is not one", () => {
    for (const bad of ["1", "0", "-5", "1 2", ""])
      expect(block("look", "blk-l4", bad).status).toBe(2);
  });
});

describe("block.sh signal", () => {
  it("signals a group that carries the block's marker", async () => {
    const g = group("sleep 30 & sleep 30; wait", { PARSL_SIDECAR_BLOCK: "blk-s1" });
    await settle();
    expect(block("signal", "blk-s1", g.pid!, "TERM").status).toBe(0);
    await waitUntil(() => !alive(g.pid!) || undefined, 5000, "the marked group gone");
  });

  it("leaves a group whose processes carry another block's marker, or none", async () => {
    const other = group("sleep 30", { PARSL_SIDECAR_BLOCK: "blk-other" });
    const none = group("sleep 30");
    await settle();
    expect(block("signal", "blk-s2", other.pid!, "KILL").status).toBe(0);
    expect(block("signal", "blk-s2", none.pid!, "KILL").status).toBe(0);
    await settle();
    expect([alive(other.pid!), alive(none.pid!)]).toEqual([true, true]);
  });

  it("leaves a group another host runs the block on", async () => {
    const g = group("sleep 30", { PARSL_SIDECAR_BLOCK: "blk-s3" });
    await settle();
    write("blk-s3.host", "login9\n");
    block("signal", "blk-s3", g.pid!, "KILL");
    await settle();
    expect(alive(g.pid!)).toBe(true);
  });

  it("refuses a signal that is not a name", () => {
    expect(block("signal", "blk-s4", 4242, "TERM; touch x").status).toBe(2);
  });
});

describe("block.sh rest and follow", () => {
  it("rest prints both files from the byte offsets given", () => {
    write("blk-o1.out", "0123456789");
    write("blk-o1.err", "abcdef");
    const r = block("rest", "blk-o1", 4, 0);
    expect([r.status, r.stdout, r.stderr]).toEqual([0, "456789", "abcdef"]);
    expect(block("rest", "blk-o1", 10, 6).stdout).toBe("");
    expect(block("rest", "blk-none", 0, 0)).toMatchObject({ status: 0, stdout: "", stderr: "" });
  });

  it("follow prints from the offsets until the block's shell ends", async () => {
    write("blk-f1.out", "seen;");
    write("blk-f1.err", "");
    const o = join(dir, "blk-f1.out");
    const e = join(dir, "blk-f1.err");
    const g = group(`sleep 0.5; echo new >> '${o}'; echo warn >> '${e}'; sleep 0.5`);
    await settle();
    const r = await blockAsync("follow", "blk-f1", g.pid!, 5, 0);
    expect([r.status, r.stdout, r.stderr]).toEqual([0, "new\n", "warn\n"]);
  });

  it("follow exits 3 without files, 4 when no shell is left or another host runs it", async () => {
    expect(block("follow", "blk-f2", 4242, 0, 0).status).toBe(3);
    write("blk-f2.out", "");
    write("blk-f2.err", "");
    const g = group("exit 0");
    await new Promise((r) => g.once("exit", r));
    expect(block("follow", "blk-f2", g.pid!, 0, 0).status).toBe(4);
    const live = group("sleep 30");
    await settle();
    write("blk-f2.host", "login9\n");
    expect(block("follow", "blk-f2", live.pid!, 0, 0).status).toBe(4);
  });
});

describe("block.sh remove", () => {
  it("removes the block's four files and no other", () => {
    for (const s of ["out", "err", "rc", "host"]) write(`blk-x1.${s}`, "x");
    write("blk-x2.out", "x");
    expect(block("remove", "blk-x1").status).toBe(0);
    expect(readdirSync(dir)).toEqual(["blk-x2.out"]);
  });
});
