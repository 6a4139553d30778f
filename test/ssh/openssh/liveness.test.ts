// The link's life: info, a master killed, sshd's connection process killed, a server that stops
// answering (ServerAlive), a changed host key (failed, both fingerprints), and close().
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { execa } from "execa";
import { descendants } from "../../testbed/procs.js";
import { stopAllAfterAll } from "../../testbed/hooks.js";
import { eventually } from "../helpers.js";
import { exec, opensshBed, spawnOn } from "./helpers.js";

stopAllAfterAll();

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `SHA256:...` of a `name type base64` line, as ssh-keygen prints it */
function fingerprintOf(line: string): string {
  const out = execFileSync("ssh-keygen", ["-lf", "-"], { input: `${line}\n`, encoding: "utf8" });
  return out.split(" ")[1]!;
}

/** the per-connection sshd processes (the listener's children named sshd) */
function connectionSshds(listener: number): number[] {
  return descendants(listener).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("sshd");
    } catch {
      return false;
    }
  });
}

describe("an openssh link's life", () => {
  it("info(), then close(): the master stops and its socket goes", { timeout: 30000 }, async () => {
    const bed = await opensshBed();
    try {
      const link = await bed.open();
      const info = link.info();
      expect(info).toMatchObject({
        target: "pool",
        transport: "openssh",
        state: "ready",
        host: "127.0.0.1",
        port: bed.sshd.port,
        user: bed.sshd.user,
        jumps: [],
        generation: 1,
        reconnects: 0,
        sessions: 0,
        last_error: null,
      });
      expect(info.server_version).toMatch(/^SSH-2\.0-OpenSSH_/);
      expect(info.cipher).toMatch(/gcm|chacha20|ctr/);
      expect(info.fingerprint).toBe(fingerprintOf(bed.sshd.hostKeyPublic));
      const path = link.controlPath!;
      expect(statSync(dirname(path)).mode & 0o777).toBe(0o700);
      expect(statSync(path).isSocket()).toBe(true);
      expect(link.sharedMaster).toBe(false);
      const pid = link.masterPid!;
      expect(alive(pid)).toBe(true);
      link.close();
      expect(link.state).toBe("closed");
      expect(await eventually(() => !alive(pid) && !existsSync(path))).toBe(true);
      await expect(link.exec("true", 1000)).rejects.toMatchObject({ code: "SSH_CONNECT" });
    } finally {
      await bed.stop();
    }
  });

  it("a killed master: down, the running command's end is reported, a new master", {
    timeout: 40000,
  }, async () => {
    const bed = await opensshBed();
    try {
      const link = await bed.open();
      const downs: Error[] = [];
      link.on("down", (e: Error) => downs.push(e));
      const gen = link.generation;
      const ended = link.ended(gen);
      const oldPath = link.controlPath!;
      const p = await spawnOn(link, "sleep 60");
      expect(await p.pgid).toBeGreaterThan(1);
      process.kill(link.masterPid!, "SIGKILL");
      // no exit status came: the connection dropped, and the process may live on there
      expect(await p.exited).toEqual({ exitCode: null, signal: null, lost: true });
      await ended;
      expect(await eventually(() => link.state === "ready" && link.generation === gen + 1)).toBe(
        true,
      );
      expect(downs).toHaveLength(1);
      expect(downs[0]).toMatchObject({ code: "SSH_CONNECT" });
      expect(link.info().reconnects).toBe(1);
      expect(link.controlPath).not.toBe(oldPath);
      expect(existsSync(oldPath)).toBe(false); // a master killed hard leaves it: removed
      expect((await exec(link, "echo back")).stdout).toBe("back\n");
    } finally {
      await bed.stop();
    }
  });

  it("sshd's connection process killed: the master sees it, the link reconnects", {
    timeout: 40000,
  }, async () => {
    const bed = await opensshBed();
    try {
      const link = await bed.open();
      const down = new Promise<Error>((r) => link.once("down", r));
      expect(await bed.sshd.dropConnections()).toBeGreaterThan(0);
      expect((await down).message).toMatch(/Lost the connection to `pool`: .*closed/);
      expect((await exec(link, "echo back")).stdout).toBe("back\n");
      expect(link.generation).toBe(2);
    } finally {
      await bed.stop();
    }
  });

  it("a server that stops answering is noticed through ServerAlive", {
    timeout: 40000,
  }, async () => {
    const bed = await opensshBed();
    let frozen: number[] = [];
    try {
      const link = await bed.open({ keepaliveMs: 1000, keepaliveCount: 2 });
      const down = new Promise<Error>((r) => link.once("down", r));
      frozen = connectionSshds(bed.sshd.pid);
      expect(frozen.length).toBeGreaterThan(0);
      for (const pid of frozen) process.kill(pid, "SIGSTOP");
      const started = Date.now();
      expect((await down).message).toMatch(/Timeout, server .* not responding/);
      expect(Date.now() - started).toBeLessThan(10000);
      expect((await exec(link, "echo back")).stdout).toBe("back\n");
    } finally {
      for (const pid of frozen) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
      await bed.stop();
    }
  });

  it("its control socket removed under it (a tmp cleaner): a new master, the command runs", {
    timeout: 40000,
  }, async () => {
    const bed = await opensshBed();
    try {
      const link = await bed.open();
      const path = link.controlPath!;
      const pid = link.masterPid!;
      rmSync(path);
      expect((await exec(link, "echo back")).stdout).toBe("back\n");
      expect(link.generation).toBe(2);
      expect(link.controlPath).not.toBe(path);
      expect(await eventually(() => !alive(pid))).toBe(true); // the lost master was stopped
    } finally {
      await bed.stop();
    }
  });

  it("a changed host key: failed, SSH_HOST_KEY naming both fingerprints", {
    timeout: 40000,
  }, async () => {
    const bed = await opensshBed();
    try {
      const link = await bed.open();
      const oldFp = fingerprintOf(bed.sshd.hostKeyPublic);
      const failed = new Promise<Error>((r) => link.once("failed", r));
      const newFp = fingerprintOf(await bed.sshd.rotateHostKey());
      const err = await failed;
      expect(err).toMatchObject({
        code: "SSH_HOST_KEY",
        data: { known: [oldFp], presented: newFp, file: bed.sshd.knownHostsPath, line: 1 },
      });
      expect(err.message).toContain(oldFp);
      expect(err.message).toContain(newFp);
      expect(err.message).toMatch(/has changed.*ssh-keygen -R/);
      expect(link.state).toBe("failed");
      await expect(link.exec("true", 1000)).rejects.toBe(err);
      // a new link is refused at once, with the same words
      await expect(bed.open()).rejects.toMatchObject({ code: "SSH_HOST_KEY" });
    } finally {
      await bed.stop();
    }
  });

  it("closed while a connect is under way, then exiting at once: no master outlives the process", {
    timeout: 60000,
  }, async () => {
    const bed = await opensshBed();
    try {
      // a master whose -S is in this runtime directory
      const masters = (): number[] =>
        readdirSync("/proc")
          .filter((p) => /^\d+$/.test(p))
          .filter((p) => {
            try {
              const argv = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
              return argv.includes("-M") && argv.some((a) => a.startsWith(bed.runtimeDir));
            } catch {
              return false;
            }
          })
          .map(Number);
      // close at several points of the connect (ssh -G, the handshake, the mux watch)
      for (const waitMs of [20, 120, 250, 400]) {
        const r = await execa(
          process.execPath,
          [
            "--import",
            "tsx",
            join(REPO, "test/fixtures/openssh-close-mid-connect.ts"),
            "pool",
            bed.configPath,
            bed.runtimeDir,
            String(waitMs),
          ],
          { cwd: REPO, reject: false, timeout: 30000 },
        );
        expect(r.stdout, r.stderr).toBe("closed");
        // the master, if the connect had started one, is stopped (SIGTERM) before the exit
        expect(await eventually(() => masters().length === 0, 2000), `after ${waitMs} ms`).toBe(
          true,
        );
      }
    } finally {
      await bed.stop();
    }
  });

  it("close stops a master of the link that no connect owns any more (a start cut short)", {
    timeout: 30000,
  }, async () => {
    const bed = await opensshBed();
    try {
      const link = await bed.open();
      const own = link.masterPid!;
      // a second master on a socket of this link's, as a start cut short as ssh went to the
      // background leaves one: its foreground gone, the link never adopted it
      const stray = `${link.controlPath!}-stray`;
      execFileSync("ssh", [
        "-F",
        bed.configPath,
        "-M",
        "-S",
        stray,
        "-o",
        "ControlPersist=60",
        "-N",
        "-f",
        "pool",
      ]);
      const check = spawnSync("ssh", ["-F", bed.configPath, "-S", stray, "-O", "check", "pool"], {
        encoding: "utf8",
      });
      const strayPid = Number(/pid=(\d+)/.exec(check.stderr)?.[1] ?? "0");
      expect(strayPid, check.stderr).toBeGreaterThan(1);
      link.close();
      expect(await eventually(() => !alive(own), 5000)).toBe(true);
      expect(await eventually(() => !alive(strayPid), 5000)).toBe(true);
      // found by its command line even without asking the master
      expect(
        await eventually(
          () =>
            !readdirSync("/proc").some((p) => {
              try {
                return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(stray);
              } catch {
                return false;
              }
            }),
          5000,
        ),
      ).toBe(true);
    } finally {
      await bed.stop();
    }
  });

  it("a sidecar that dies leaves its master for ControlPersist only; alive, it holds it", {
    timeout: 40000,
  }, async () => {
    const bed = await opensshBed();
    try {
      // node itself (not the tsx wrapper, which would survive as a parent without its child)
      const holder = spawn(
        process.execPath,
        [
          "--import",
          "tsx",
          join(REPO, "test/fixtures/openssh-link-holder.ts"),
          "pool",
          bed.configPath,
          bed.runtimeDir,
          "2",
        ],
        { cwd: REPO, stdio: ["ignore", "pipe", "inherit"] },
      );
      try {
        const pid = await new Promise<number>((res, rej) => {
          let out = "";
          holder.stdout!.on("data", (b: Buffer) => {
            out += b.toString();
            if (out.includes("\n")) res(Number(out.trim()));
          });
          holder.on("exit", () => rej(new Error(`the holder ended early: ${out}`)));
        });
        expect(alive(pid)).toBe(true);
        // idle, past ControlPersist (2 s): the link's connection to it keeps it
        await new Promise((r) => setTimeout(r, 3500));
        expect(alive(pid)).toBe(true);
        holder.kill("SIGKILL");
        const killed = Date.now();
        expect(await eventually(() => !alive(pid), 10000)).toBe(true);
        expect(Date.now() - killed).toBeGreaterThan(1000);
      } finally {
        holder.kill("SIGKILL"); // also when a check above failed
      }
    } finally {
      await bed.stop();
    }
  });
});
