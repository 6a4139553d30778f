// src/remote/env/lock.sh run with `sh` (no sshd): the lock taken (flock and mkdir), a second
// holder waiting until the first lets go, a stale mkdir lock taken over, the lock refused
// (an unwritable place, flock asked for where there is none), and a watched group stopped when
// stdin closes.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { alive } from "../../testbed/procs.js";
import { REMOTE, waitUntil } from "../helpers.js";

const LOCK = join(REMOTE, "env", "lock.sh");

let dir: string;
const children: ChildProcessWithoutNullStreams[] = [];
const groups: number[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "psc-remote-lock-"));
});
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  for (const g of groups.splice(0)) {
    try {
      process.kill(-g, "SIGKILL");
    } catch {
      // gone already
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** A holder of `lock`; its stdout lines as they come. */
function holder(lock: string, mechanism: string, env: Record<string, string> = {}) {
  const c = spawn("/bin/sh", [LOCK, lock, mechanism], { env: { ...process.env, ...env } });
  children.push(c);
  const lines: string[] = [];
  createInterface({ input: c.stdout }).on("line", (l) => lines.push(l));
  const exited = new Promise<number | null>((r) => c.on("exit", (code) => r(code)));
  const line = (prefix: string) =>
    waitUntil(() => lines.find((l) => l.startsWith(prefix)), 20_000, `a '${prefix}' line`);
  return { c, lines, line, exited };
}

const host = hostname();

describe("lock.sh", { timeout: 60_000 }, () => {
  for (const mechanism of ["flock", "mkdir"] as const) {
    it(`${mechanism}: taken, a second holder waits, and gets it when the first lets go`, async () => {
      const lock = join(dir, `a b 'c' "d" $e`, ".env.parsl-sidecar.lock");
      const a = holder(lock, mechanism);
      expect(await a.line("LOCKED")).toBe(`LOCKED ${mechanism}`);
      const owner = readFileSync(mechanism === "flock" ? lock : `${lock}.d/owner`, "utf8");
      expect(owner).toBe(`${host} ${a.c.pid}\n`);
      const b = holder(lock, mechanism);
      expect(await b.line("WAIT")).toBe(`WAIT ${host} ${a.c.pid}`);
      await new Promise((r) => setTimeout(r, 1200));
      expect(b.lines.some((l) => l.startsWith("LOCKED"))).toBe(false);
      a.c.stdin.end();
      expect(await a.exited).toBe(0);
      expect(await b.line("LOCKED")).toBe(`LOCKED ${mechanism}`);
      b.c.stdin.end();
      expect(await b.exited).toBe(0);
      if (mechanism === "mkdir") expect(existsSync(`${lock}.d`)).toBe(false);
    });
  }

  it("auto takes flock where there is flock", async () => {
    const a = holder(join(dir, "x.lock"), "auto");
    expect(await a.line("LOCKED")).toBe("LOCKED flock");
  });

  it("mkdir: a lock whose holder on this host is dead is stale and taken over", async () => {
    const lock = join(dir, "y.lock");
    mkdirSync(`${lock}.d`);
    writeFileSync(`${lock}.d/owner`, `${host} 999999\n`);
    const a = holder(lock, "mkdir");
    expect(await a.line("STALE")).toBe(`STALE ${host} 999999`);
    expect(await a.line("LOCKED")).toBe("LOCKED mkdir");
  });

  it("refused where the lock's directory cannot be written (exit 3)", async () => {
    const a = holder("/proc/nope/z.lock", "auto");
    expect(await a.line("ERROR")).toBe(
      "ERROR cannot write to /proc/nope (for the lock /proc/nope/z.lock)",
    );
    expect(await a.exited).toBe(3);
  });

  it("refused when flock is asked for and there is none (exit 3)", async () => {
    const bin = join(dir, "bin");
    mkdirSync(bin);
    for (const t of ["hostname", "dirname", "mkdir"]) symlinkSync(`/usr/bin/${t}`, join(bin, t));
    const a = holder(join(dir, "w.lock"), "flock", { PATH: bin });
    expect(await a.line("ERROR")).toBe("ERROR flock is not installed");
    expect(await a.exited).toBe(3);
  });

  it("stops a watched group when stdin closes, not one unwatched", async () => {
    const group = (): number => {
      const g = spawn("sh", ["-c", "sleep 300 & wait"], { detached: true, stdio: "ignore" });
      g.unref();
      groups.push(g.pid!);
      return g.pid!;
    };
    const a = holder(join(dir, "v.lock"), "flock");
    await a.line("LOCKED");
    const kept = group();
    a.c.stdin.write(`watch ${kept}\n`);
    a.c.stdin.write("unwatch\n");
    a.c.stdin.end();
    expect(await a.exited).toBe(0);
    const b = holder(join(dir, "v.lock"), "flock");
    await b.line("LOCKED");
    const stopped = group();
    b.c.stdin.write(`watch ${stopped}\n`);
    b.c.stdin.end();
    expect(await b.exited).toBe(0);
    await waitUntil(() => (alive(stopped) ? undefined : true), 10_000, "the watched group to stop");
    expect(alive(kept)).toBe(true);
  });
});
