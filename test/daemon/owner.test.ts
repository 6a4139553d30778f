import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";

const MAIN = resolve(import.meta.dirname, "../../dist/bin/parsl-sidecar.js");
const dirs: string[] = [];
const procs: ChildProcess[] = [];

afterEach(() => {
  for (const p of procs.splice(0)) if (p.exitCode === null) p.kill("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** `serve --json` with extra flags; resolves once it printed where it listens. */
async function serve(flags: string[], stdin: "pipe" | "ignore") {
  const dir = mkdtempSync(join(tmpdir(), "psc-owner-"));
  dirs.push(dir);
  const p = spawn(
    process.execPath,
    [MAIN, "serve", "--runtime-dir", dir, "--json", "--log-level", "warn", ...flags],
    { stdio: [stdin, "pipe", "inherit"] },
  );
  procs.push(p);
  let out = "";
  for await (const chunk of p.stdout!) {
    out += String(chunk);
    if (out.trim().endsWith("}")) break;
  }
  // a sidecar that ignores its owner would run on: fail after 5 s rather than hang
  const exited = Promise.race([
    once(p, "exit") as Promise<[number | null, string | null]>,
    new Promise<never>((_, reject) => {
      const t = setTimeout(() => reject(new Error("the sidecar outlived its owner by 5 s")), 5000);
      p.once("exit", () => clearTimeout(t));
    }),
  ]);
  // (a rejection before the test awaits it is still reported by that await)
  exited.catch(() => undefined);
  return { p, dir, exited, info: JSON.parse(out) as { connection_file: string } };
}

describe("serve --owner-pid / --owner-stdin", () => {
  it("stops cleanly when the owner's pipe on stdin closes", async () => {
    const s = await serve(["--owner-stdin"], "pipe");
    expect(existsSync(s.info.connection_file)).toBe(true);
    const t = Date.now();
    s.p.stdin!.end();
    const [code] = await s.exited;
    expect(code).toBe(0);
    expect(Date.now() - t).toBeLessThan(3000);
    expect(existsSync(s.info.connection_file)).toBe(false);
  });

  it("stops cleanly when the owner's pid exits, stdin or not", async () => {
    const owner = spawn("sleep", ["60"], { stdio: "ignore" });
    procs.push(owner);
    const s = await serve(["--owner-pid", String(owner.pid)], "ignore");
    await new Promise((r) => setTimeout(r, 300));
    expect(s.p.exitCode).toBe(null);
    owner.kill("SIGKILL");
    const [code] = await s.exited;
    expect(code).toBe(0);
    expect(existsSync(s.info.connection_file)).toBe(false);
  });

  it("refuses --owner-stdin with --detach (exit 2)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "psc-owner-"));
    dirs.push(dir);
    const args = [MAIN, "serve", "--detach", "--owner-stdin", "--runtime-dir", dir];
    const p = spawn(process.execPath, args, { stdio: "ignore" });
    const [code] = (await once(p, "exit")) as [number];
    expect(code).toBe(2);
  });
});
