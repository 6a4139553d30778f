// src/remote/executors/preflight.sh (dirs, commands, dial) and dial.py run directly with `sh`
// and python3: the directories it cannot make or write, the commands it cannot find, and
// whether a worker could connect to an address and port, with a fallback to python3.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REMOTE } from "../helpers.js";

const PREFLIGHT = join(REMOTE, "executors", "preflight.sh");
const DIAL = readFileSync(join(REMOTE, "executors", "dial.py"), "utf8");

const scratch = mkdtempSync(join(tmpdir(), "psc-preflight-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function preflight(...args: string[]) {
  return spawnSync("sh", [PREFLIGHT, ...args], { encoding: "utf8", timeout: 60_000 });
}

describe("preflight.sh dirs", () => {
  it("creates the directories and prints only those it cannot create or write", () => {
    const odd = join(scratch, `a dir with 'quotes' and $HOME`);
    const ro = join(scratch, "ro");
    mkdirSync(ro);
    chmodSync(ro, 0o500);
    const r = preflight("dirs", odd, join(scratch, "x", "y"), "/proc/nope", join(ro, "sub"));
    expect(r.status).toBe(0);
    expect(existsSync(odd)).toBe(true);
    expect(existsSync(join(scratch, "x", "y"))).toBe(true);
    // root may write into ro regardless of its mode
    const expected = process.getuid?.() === 0 ? ["/proc/nope"] : ["/proc/nope", join(ro, "sub")];
    expect(r.stdout.split("\n").filter(Boolean)).toEqual(expected);
  });
});

describe("preflight.sh commands", () => {
  it("prints the commands the shell cannot find, one a line", () => {
    const r = preflight("commands", "sh", "no-such-qsub", "ls", "no-such-qdel");
    expect([r.status, r.stdout]).toEqual([0, "no-such-qsub\nno-such-qdel\n"]);
  });
});

describe("preflight.sh dial (dial.py)", () => {
  let server: Server;
  let port: number;
  let closed: number;
  beforeAll(async () => {
    server = createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
    // a port nobody listens on: one just released
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    closed = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
  });
  afterAll(() => new Promise((r) => server.close(r)));

  it("says ok at the first address that accepts", () => {
    const r = preflight("dial", "python3", DIAL, `127.0.0.9,127.0.0.1`, String(port));
    expect(r.stdout.trim()).toBe("PSC-TUNNEL ok");
  });

  it("names each address that refused", () => {
    const r = preflight("dial", "python3", DIAL, "127.0.0.1,localhost", String(closed));
    expect(r.stdout.trim()).toMatch(/^PSC-TUNNEL 127\.0\.0\.1: .*refused.*; localhost: .*$/);
  });

  it("falls back to python3 when PYTHON cannot run", () => {
    const r = preflight("dial", "no-such-python", DIAL, "127.0.0.1", String(port));
    expect(r.stdout).toMatch(/not found/);
    expect(r.stdout.split("\n")).toContain("PSC-TUNNEL ok");
  });
});
