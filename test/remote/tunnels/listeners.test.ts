// src/remote/tunnels/find-python.sh, inspect.sh, listeners.py and listeners.sh (ss), run directly,
// and the inspection command pool-commands.ts builds from them: the python found, the addresses
// to dial, and what listens on a port.
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { inspectCommand, parseLines } from "../../../src/tunnels/pool-commands.js";
import { freePort, program, run } from "./helpers.js";

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** Listen on host:port (0: any); resolves with the port. */
async function listen(host: string, port = 0): Promise<number> {
  const s = createServer();
  servers.push(s);
  await new Promise<void>((r) => s.listen(port, host, () => r()));
  return (s.address() as { port: number }).port;
}

const LISTENERS = {
  "listeners.py": (port: number) => run("python3", [program("listeners.py"), String(port)]),
  "listeners.sh": (port: number) => run("sh", [program("listeners.sh"), String(port)]),
};

for (const [name, listeners] of Object.entries(LISTENERS)) {
  describe(name, () => {
    it("finds the addresses listening on a port, IPv4 and IPv6", async () => {
      const port = await listen("127.0.0.1");
      await listen("::1", port);
      const r = await listeners(port);
      expect(r.code).toBe(0);
      expect(r.stdout.startsWith("LISTENERS ")).toBe(true);
      expect(parseLines(r.stdout).LISTENERS!.split(" ").sort()).toEqual(["127.0.0.1", "::1"]);
    });

    it("finds nothing on a port nothing listens on", async () => {
      const r = await listeners(await freePort());
      expect(parseLines(r.stdout)).toEqual({ LISTENERS: "" });
    });
  });
}

describe("find-python.sh", () => {
  it("names a python 3.4+ on PATH", async () => {
    const r = await run("sh", [program("find-python.sh")]);
    expect(r.stdout).toBe("python3\n");
  });

  it("names nothing where there is none", async () => {
    const r = await run("/bin/sh", [program("find-python.sh")], { env: { PATH: "/nonexistent" } });
    expect(r.stdout).toBe("");
    expect(r.code).toBe(0);
  });
});

describe("inspect.sh and inspectCommand", () => {
  it("prints ADDRS and HOSTADDR lines", async () => {
    const r = await run("sh", [program("inspect.sh")]);
    expect(r.stdout).toMatch(/^ADDRS [0-9. ]*\nHOSTADDR [0-9.]*\n$/);
  });

  it("the command prints PYTHON, ADDRS, HOSTADDR and, given a port, LISTENERS", async () => {
    const port = await listen("127.0.0.1");
    const r = await run("sh", ["-c", inspectCommand(port)]);
    expect(r.stdout.split("\n").map((l) => l.split(" ")[0])).toEqual([
      "PYTHON",
      "ADDRS",
      "HOSTADDR",
      "LISTENERS",
      "",
    ]);
    const info = parseLines(r.stdout);
    expect(info.PYTHON).toBe("python3");
    expect(info.LISTENERS).toBe("127.0.0.1");
    expect(parseLines((await run("sh", ["-c", inspectCommand()])).stdout).LISTENERS).toBe(
      undefined,
    );
  });
});
