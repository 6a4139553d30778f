import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SidecarClient } from "../../src/client/client.js";
import { Daemon } from "../../src/daemon/daemon.js";
import { checkEndpoint } from "../../src/daemon/endpoint.js";
import { newKey } from "../../src/rpc/connection-file.js";

let dir: string;
const started: Daemon[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "psc-d-"));
});
afterEach(async () => {
  for (const d of started.splice(0)) await d.close();
  rmSync(dir, { recursive: true, force: true });
});

async function start(opts: Parameters<typeof Daemon.start>[0] = {}): Promise<Daemon> {
  const d = await Daemon.start({
    runtimeDir: dir,
    stateDir: join(dir, "state"),
    stderrLevel: "silent",
    ...opts,
  });
  started.push(d);
  return d;
}

describe("Daemon", () => {
  it("serves the built-in methods at its connection file", async () => {
    const d = await start();
    const c = SidecarClient.connect(d.connectionFile);
    try {
      await expect(c.call("sidecar.ping")).resolves.toMatchObject({ pong: true });
      const s = await c.call<{
        pid: number;
        connection_file: string;
        memory: { rss_mb: number; heap_used_mb: number; fds: number };
      }>("sidecar.status");
      expect(s.pid).toBe(process.pid);
      expect(s.connection_file).toBe(d.connectionFile);
      // the process's own figures, as /proc has them
      const rss = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync("/proc/self/status", "utf8"))![1]);
      expect(Math.abs(s.memory.rss_mb - rss / 1024)).toBeLessThan(0.25 * (rss / 1024));
      expect(s.memory.heap_used_mb).toBeGreaterThan(1);
      expect(Math.abs(s.memory.fds - readdirSync("/proc/self/fd").length)).toBeLessThanOrEqual(3);
    } finally {
      c.close();
    }
  });

  it("refuses a second sidecar in the same runtime directory (ALREADY_RUNNING)", async () => {
    await start();
    await expect(Daemon.start({ runtimeDir: dir, stderrLevel: "silent" })).rejects.toMatchObject({
      code: "ALREADY_RUNNING",
      message: expect.stringContaining("already running"),
    });
  });

  it("replaces a stale connection file and lock left by a dead sidecar", async () => {
    const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
    const stale = {
      endpoint: `ipc://${dir}/old.sock`,
      protocol_version: 1,
      signature_scheme: "hmac-sha256",
      key: newKey().toString("hex"),
      pid: dead,
      started_at: "x",
      version: "0",
    };
    writeFileSync(join(dir, "sidecar.json"), JSON.stringify(stale), { mode: 0o600 });
    writeFileSync(join(dir, "sidecar.lock"), `${dead}\n`, { mode: 0o600 });
    const d = await start();
    expect(d.info.pid).toBe(process.pid);
  });

  it("removes its connection file, socket and lock on close", async () => {
    const d = await start();
    expect(existsSync(join(dir, "sidecar.sock"))).toBe(true);
    await d.close();
    expect(readdirSync(dir).filter((f) => f !== "sidecar.log" && f !== "state")).toEqual([]);
    await expect(d.closed()).resolves.toBe("closed");
  });

  it("shuts down on sidecar.shutdown after replying", async () => {
    const d = await start();
    const c = SidecarClient.connect(d.connectionFile);
    try {
      await expect(c.call("sidecar.shutdown", { reason: "test" })).resolves.toEqual({ ok: true });
    } finally {
      c.close();
    }
    await expect(d.closed()).resolves.toBe("test");
    expect(existsSync(d.connectionFile)).toBe(false);
  });

  it("fails in-flight calls with SHUTTING_DOWN after the grace period", async () => {
    const d = await start({ shutdownGraceMs: 100 });
    const c = SidecarClient.connect(d.connectionFile);
    try {
      const slow = c.call("sidecar.echo", { delay_ms: 5000 });
      await c.call("sidecar.ping");
      await d.close();
      await expect(slow).rejects.toMatchObject({ code: "SHUTTING_DOWN" });
    } finally {
      c.close();
    }
  });

  it("listens on loopback tcp", async () => {
    const d = await start({ endpoint: "tcp://127.0.0.1:*" });
    expect(d.info.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
  });

  it("refuses a non-loopback address without allowRemote, before binding anything", async () => {
    await expect(start({ endpoint: "tcp://10.1.2.3:5555" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining("--allow-remote"),
    });
    expect(existsSync(join(dir, "sidecar.lock"))).toBe(false);
  });
});

describe("checkEndpoint", () => {
  it("accepts ipc and loopback tcp", () => {
    expect(checkEndpoint("ipc:///tmp/x.sock", false)).toEqual({ remote: false });
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "[::1]"])
      expect(checkEndpoint(`tcp://${h}:5555`, false)).toEqual({ remote: false });
  });

  it("needs allowRemote for other hosts", () => {
    expect(() => checkEndpoint("tcp://0.0.0.0:5555", false)).toThrow(/--allow-remote/);
    expect(() => checkEndpoint("tcp://192.168.1.1:5555", false)).toThrow(/non-loopback/);
    expect(checkEndpoint("tcp://0.0.0.0:5555", true)).toEqual({ remote: true });
  });

  it("names a malformed endpoint", () => {
    expect(() => checkEndpoint("udp://x", false)).toThrow(/`--endpoint`.*`udp:\/\/x`/);
    expect(() => checkEndpoint("tcp://127.0.0.1:99999", false)).toThrow(/0-65535/);
    expect(() => checkEndpoint(`ipc:///${"x".repeat(120)}`, false)).toThrow(/100 characters/);
  });
});

describe("replies after progress", () => {
  it("sends the reply that follows progress messages at once, every time", async () => {
    const d = await start();
    const c = SidecarClient.connect(d.connectionFile);
    try {
      for (let i = 0; i < 30; i++) {
        let progress = 0;
        const r = await c.call(
          "sidecar.echo",
          { value: i, progress_steps: 2 },
          { timeout: 5000, onProgress: () => progress++ },
        );
        expect(r).toEqual({ value: i });
        expect(progress).toBe(2);
      }
    } finally {
      c.close();
    }
  });
});
