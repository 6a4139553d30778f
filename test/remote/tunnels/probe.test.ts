// src/remote/tunnels/probe.py (python3) and probe-tcp.bash (its bash /dev/tcp fallback), run
// directly: `RESULT ok ...` when the far end answers `PSC-OK <token>` to `PSC-CHECK <token>`,
// `RESULT <why>` otherwise (a wrong answer, nothing listening); exit 0 either way. Then the whole
// probe command as pool-commands.ts builds it, run by sh: its `SESSION` line names its parent.
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { probeCommand } from "../../../src/tunnels/pool-commands.js";
import { freePort, program, run, server } from "./helpers.js";

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** A server that reads one line and answers `answer(line)`; `lines` holds what it read. */
async function answering(answer: (line: string) => string) {
  const lines: string[] = [];
  const srv = await server((s: Socket) => {
    let buf = "";
    s.on("data", (b: Buffer) => {
      buf += b.toString("latin1");
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      lines.push(buf.slice(0, nl));
      s.end(answer(buf.slice(0, nl)));
    });
  });
  closers.push(() => srv.close());
  return { port: srv.port, lines };
}

const PROBES = {
  "probe.py": (host: string, port: number, token: string) =>
    run("python3", [program("probe.py"), host, String(port), token]),
  "probe-tcp.bash": (host: string, port: number, token: string) =>
    run("bash", [program("probe-tcp.bash"), host, String(port), token]),
};

for (const [name, probe] of Object.entries(PROBES)) {
  describe(name, () => {
    it("says `RESULT ok` when the tunnel answers PSC-OK with its token", async () => {
      const far = await answering((l) => `PSC-OK ${l.replace(/^PSC-CHECK /, "")}\n`);
      const r = await probe("127.0.0.1", far.port, "tok123");
      expect(far.lines).toEqual(["PSC-CHECK tok123"]);
      expect(r.stdout).toMatch(/^RESULT ok \d+\n$/);
      expect(r.code).toBe(0);
    });

    it("says why not when something else answers", async () => {
      const far = await answering(() => "SSH-2.0-something\n");
      const r = await probe("127.0.0.1", far.port, "tok123");
      expect(r.stdout).toMatch(/^RESULT unexpected answer '?SSH-2\.0-something'?\n$/);
      expect(r.code).toBe(0);
    });

    it("says why not when the token is another's", async () => {
      const far = await answering(() => "PSC-OK other\n");
      const r = await probe("127.0.0.1", far.port, "tok123");
      expect(r.stdout).toMatch(/^RESULT unexpected answer/);
    });

    it("says why not when nothing listens", async () => {
      const r = await probe("127.0.0.1", await freePort(), "tok123");
      expect(r.stdout).toMatch(/^RESULT /);
      expect(r.stdout).not.toMatch(/^RESULT ok/);
      expect(r.code).toBe(0);
    });
  });
}

describe("probeCommand", () => {
  it("prints SESSION (its shell's parent, the boot id) and the probe's RESULT", async () => {
    const far = await answering((l) => `PSC-OK ${l.replace(/^PSC-CHECK /, "")}\n`);
    for (const python of ["python3", undefined]) {
      const r = await run("sh", ["-c", probeCommand(python, "127.0.0.1", far.port, "t0k")]);
      const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
      expect(r.stdout).toMatch(
        new RegExp(`^SESSION ${process.pid} ${bootId}\\nRESULT ok \\d+\\n$`),
      );
    }
  });
});
