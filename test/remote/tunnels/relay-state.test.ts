// src/remote/tunnels/relay-port.sh and kill-relay.sh run directly with sh, against a durable
// relay's state directory and a real durable relay (relay.py, its id on its command line), and
// the commands relay-commands.ts builds (the state root under $HOME).
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { killRelayCommand, relayPortCommand } from "../../../src/tunnels/relay-commands.js";
import { alive } from "../../testbed/procs.js";
import { waitUntil } from "../helpers.js";
import { freePort, program, run, start, stopAll } from "./helpers.js";

let home: string;
let root: string;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "psc-relays-"));
  root = join(home, ".parsl-sidecar", "relays");
  mkdirSync(root, { recursive: true });
});
afterEach(() => {
  stopAll();
  rmSync(home, { recursive: true, force: true });
});

/** A durable relay whose sidecar is away (it waits 60 s for one); resolves with its pid. */
async function durableRelay(id: string): Promise<number> {
  const r = start("python3", [
    "-u",
    program("relay.py"),
    "durable",
    "127.0.0.1",
    "0",
    "0",
    String(await freePort()),
    root,
    "60",
    "1",
    id,
  ]);
  r.proc.stdin.end(`${randomBytes(32).toString("hex")}\n`);
  await r.line("LISTEN ");
  return r.proc.pid!;
}

describe("relay-port.sh", () => {
  it("rewrites the relay's port file whole, owner-only, and says PORT", async () => {
    mkdirSync(join(root, "r1"));
    const r = await run("sh", [program("relay-port.sh"), root, "r1", "4321"]);
    expect(r).toMatchObject({ stdout: "PORT 4321\n", code: 0 });
    expect(readFileSync(join(root, "r1", "port"), "utf8")).toBe("4321\n");
    expect(statSync(join(root, "r1", "port")).mode & 0o777).toBe(0o600);
    expect(existsSync(join(root, "r1", "port.tmp"))).toBe(false);
  });

  it("says NORELAY when the relay's state is gone", async () => {
    const r = await run("sh", [program("relay-port.sh"), root, "r2", "4321"]);
    expect(r).toMatchObject({ stdout: "NORELAY\n", code: 0 });
    expect(existsSync(join(root, "r2"))).toBe(false);
  });

  it("relayPortCommand finds the state under $HOME", async () => {
    mkdirSync(join(root, "r3"));
    const r = await run("sh", ["-c", relayPortCommand("r3", 55)], { env: { HOME: home } });
    expect(r.stdout).toBe("PORT 55\n");
    expect(readFileSync(join(root, "r3", "port"), "utf8")).toBe("55\n");
  });
});

describe("relay-alive.sh", () => {
  it("ALIVE for the group whose leader names the relay; GONE for another's, or once it ended", async () => {
    const id = randomBytes(8).toString("hex");
    const pid = await durableRelay(id);
    const other = await durableRelay(randomBytes(8).toString("hex"));
    const ask = (pgid: number) => run("sh", [program("relay-alive.sh"), id, String(pgid)]);
    expect(await ask(pid)).toMatchObject({ stdout: "ALIVE\n", code: 0 });
    expect(await ask(other)).toMatchObject({ stdout: "GONE\n", code: 0 });
    process.kill(-pid, "SIGKILL");
    await waitUntil(() => !alive(pid) || undefined, 5000, "the relay gone");
    expect(await ask(pid)).toMatchObject({ stdout: "GONE\n", code: 0 });
    expect(await run("sh", [program("relay-alive.sh"), "", String(other)])).toMatchObject({
      stdout: "GONE\n",
    });
  });
});

describe("kill-relay.sh", () => {
  it("kills the group whose leader names the relay, and removes its state", async () => {
    const id = randomBytes(8).toString("hex");
    const pid = await durableRelay(id);
    expect(existsSync(join(root, id))).toBe(true);
    const r = await run("sh", [program("kill-relay.sh"), root, id, String(pid)]);
    expect(r).toMatchObject({ stdout: `KILLED ${pid}\n`, code: 0 });
    await waitUntil(() => !alive(pid) || undefined, 5000, "the relay gone");
    expect(existsSync(join(root, id))).toBe(false);
  });

  it("leaves a group that does not name the relay (its state goes all the same)", async () => {
    const id = randomBytes(8).toString("hex");
    const other = await durableRelay(randomBytes(8).toString("hex"));
    mkdirSync(join(root, id));
    const r = await run("sh", [program("kill-relay.sh"), root, id, String(other)]);
    expect(r).toMatchObject({ stdout: "", code: 0 });
    expect(alive(other)).toBe(true);
    expect(existsSync(join(root, id))).toBe(false);
  });

  it("killRelayCommand finds the state under $HOME", async () => {
    const id = randomBytes(8).toString("hex");
    const pid = await durableRelay(id);
    const r = await run("sh", ["-c", killRelayCommand(id, pid)], { env: { HOME: home } });
    expect(r.stdout).toBe(`KILLED ${pid}\n`);
    expect(existsSync(join(root, id))).toBe(false);
  });
});
