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

describe("direct mode (the SSH master connects to the service itself)", () => {
  /** A server that records what each connection sent and the peer port it came from. */
  async function silent() {
    const seen: Array<{ port: number; bytes: number }> = [];
    const srv = await server((s: Socket) => {
      const c = { port: s.remotePort ?? 0, bytes: 0 };
      seen.push(c);
      s.on("data", (b: Buffer) => (c.bytes += b.length));
    });
    closers.push(() => srv.close());
    return { port: srv.port, seen };
  }

  it("probe.py sends nothing and names its own port, by which the master's log finds it", async () => {
    const far = await silent();
    const r = await run("python3", [
      program("probe.py"),
      "127.0.0.1",
      String(far.port),
      "t",
      "direct",
    ]);
    const m = /^SRC (\d+)\nRESULT ok \d+\n$/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(far.seen).toEqual([{ port: Number(m![1]), bytes: 0 }]);
  });

  it("probe-tcp.bash sends nothing either (it cannot name its port)", async () => {
    const far = await silent();
    const r = await run("bash", [
      program("probe-tcp.bash"),
      "127.0.0.1",
      String(far.port),
      "t",
      "direct",
    ]);
    expect(r.stdout).toBe("RESULT ok 0\n");
    expect(far.seen).toHaveLength(1);
    expect(far.seen[0]!.bytes).toBe(0);
  });

  it("both say why not when nothing listens", async () => {
    const port = String(await freePort());
    for (const [cmd, prog] of [
      ["python3", "probe.py"],
      ["bash", "probe-tcp.bash"],
    ] as const) {
      const r = await run(cmd, [program(prog), "127.0.0.1", port, "t", "direct"]);
      expect(r.stdout).toMatch(/^RESULT /);
      expect(r.stdout).not.toMatch(/RESULT ok/);
    }
  });
});

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
