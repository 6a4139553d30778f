// Runs a program of src/remote/staging/ with `sh` here, as the pool store does over exec (its
// values as arguments), and a scratch directory per test.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REMOTE } from "../helpers.js";

export interface Ran {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** `sh staging/NAME.sh ARGS...` with `input` on stdin (and `env` over this process's). */
export function run(
  name: string,
  args: Array<string | number>,
  input: Buffer | string = "",
  env: Record<string, string> = {},
): Ran {
  const r = spawnSync("/bin/sh", [join(REMOTE, "staging", `${name}.sh`), ...args.map(String)], {
    input,
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString("utf8") };
}

/** A scratch directory under the system's temp directory; `done()` removes it. */
export function scratch(): { dir: string; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), "psc-remote-staging-"));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A directory of links to `tools` only, to be the whole PATH (openssl left out, say). */
export function pathWith(dir: string, tools: string[]): string {
  const bin = join(dir, "bin-only");
  mkdirSync(bin, { recursive: true });
  for (const t of tools) {
    const found = spawnSync("sh", ["-c", `command -v ${t}`], { encoding: "utf8" }).stdout.trim();
    if (!found.startsWith("/")) throw new Error(`no ${t} on this machine`);
    symlinkSync(found, join(bin, t));
  }
  return bin;
}
