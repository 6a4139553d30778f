// src/remote/tunnels/reclaim.sh run directly with sh: it ends the previous connection's sshd
// session (a copy of `sleep` named sshd plays it) and the previous plain relay's process group
// (relay.py run as the sidecar runs it, its program on its command line), and nothing else: not
// on another boot, not a group whose leader is not the relay, not a session that is not sshd,
// not the caller's own sshd.
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { programText } from "../../../src/remote/index.js";
import { reclaimCommand } from "../../../src/tunnels/pool-commands.js";
import { alive } from "../../testbed/procs.js";
import { waitUntil } from "../helpers.js";
import { program, run, start, stopAll } from "./helpers.js";

const BOOT = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
let bin: string;
beforeAll(() => {
  bin = mkdtempSync(join(tmpdir(), "psc-reclaim-"));
  copyFileSync("/bin/sleep", join(bin, "sshd"));
  copyFileSync("/bin/sh", join(bin, "sshd-sh"));
});
afterAll(() => rmSync(bin, { recursive: true, force: true }));
afterEach(() => stopAll());

/** A stand-in for a dropped connection's sshd session process (its comm is `sshd`). */
function session(): number {
  return start(join(bin, "sshd"), ["300"]).proc.pid!;
}

/** A plain relay in a group of its own, started as `python3 -u -c PROGRAM plain ...`. */
async function relayGroup(): Promise<number> {
  const r = start("python3", [
    "-u",
    "-c",
    programText("tunnels/relay.py"),
    "plain",
    "127.0.0.1",
    "0",
    "127.0.0.1",
    "1",
    "0",
  ]);
  await r.line("LISTEN ");
  return r.proc.pid!;
}

/** Some other process group of this user. */
function otherGroup(): number {
  return start("sh", ["-c", "sleep 300; echo 'LISTEN %s'"]).proc.pid!;
}

const reclaim = (boot: string, s: number | "", g: number | "", here: number | "" = "") =>
  run("sh", [program("reclaim.sh"), boot, String(s), String(g), String(here)]);

const gone = (pid: number) => waitUntil(() => !alive(pid) || undefined, 5000, `${pid} gone`);

describe("reclaim.sh", () => {
  it("ends the old session and the old relay's group, and says so", async () => {
    const s = session();
    const g = await relayGroup();
    const r = await reclaim(BOOT, s, g);
    expect(r.stdout).toBe(`KILLED session ${s}\nKILLED relay ${g}\n`);
    expect(r.code).toBe(0);
    await gone(s);
    await gone(g);
  });

  it("ends the shells between the relay and the session too (over openssh, the session program)", async () => {
    // a session process (a copy of sh) -> a shell (the session program) -> the relay's group
    const prog = programText("tunnels/relay.py");
    const sess = start(join(bin, "sshd-sh"), [
      "-c",
      'sh -c \'setsid python3 -u -c "$0" plain 127.0.0.1 0 127.0.0.1 1 0; true\' "$1" <&0 & wait',
      "psc-session",
      prog,
    ]);
    const s = sess.proc.pid!;
    const relay = await waitUntil(
      () => {
        const kids = readFileSync(`/proc/${s}/task/${s}/children`, "utf8").trim().split(/\s+/);
        const shell = Number(kids[0]);
        if (!shell) return undefined;
        const g = readFileSync(`/proc/${shell}/task/${shell}/children`, "utf8").trim();
        return g ? { shell, g: Number(g.split(/\s+/)[0]) } : undefined;
      },
      10_000,
      "the relay under its shell",
    );
    await waitUntil(
      () =>
        readFileSync(`/proc/${relay.g}/cmdline`, "latin1").includes("LISTEN %s %d") || undefined,
      10_000,
      "the relay's program on its command line",
    );
    // the shell is stopped, as on a hung connection, so it cannot end by itself
    process.kill(relay.shell, "SIGSTOP");
    const r = await reclaim(BOOT, s, relay.g);
    expect(r.stdout).toContain(`KILLED relay ${relay.g}`);
    await gone(relay.g);
    await gone(relay.shell);
  });

  it("does nothing on another boot (or machine)", async () => {
    const s = session();
    const g = await relayGroup();
    const r = await reclaim("00000000-0000-0000-0000-000000000000", s, g);
    expect(r).toMatchObject({ stdout: "", code: 0 });
    expect(alive(s) && alive(g)).toBe(true);
  });

  it("leaves a group whose leader is not the relay, and a session that is not sshd", async () => {
    const g = otherGroup();
    const notSshd = start("sleep", ["300"]).proc.pid!;
    const r = await reclaim(BOOT, notSshd, g);
    expect(r).toMatchObject({ stdout: "", code: 0 });
    expect(alive(g) && alive(notSshd)).toBe(true);
  });

  it("leaves the caller's own sshd session", async () => {
    const s = session();
    const r = await reclaim(BOOT, s, "", s);
    expect(r).toMatchObject({ stdout: "", code: 0 });
    expect(alive(s)).toBe(true);
  });

  it("reclaimCommand passes the session, the group and the caller's parent", async () => {
    const s = session();
    const g = await relayGroup();
    const r = await run("sh", ["-c", reclaimCommand({ pid: s, bootId: BOOT }, g)]);
    expect(r.stdout).toBe(`KILLED session ${s}\nKILLED relay ${g}\n`);
    // without a relay group only the session is looked at
    const s2 = session();
    const g2 = await relayGroup();
    const r2 = await run("sh", ["-c", reclaimCommand({ pid: s2, bootId: BOOT }, null)]);
    expect(r2.stdout).toBe(`KILLED session ${s2}\n`);
    expect(alive(g2)).toBe(true);
  });
});
