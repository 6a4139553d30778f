// Starts `cli.ts up KIND` from TypeScript (benchmarks, tests of the CLI itself).
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { resolve } from "node:path";
import { createInterface } from "node:readline";

export const REPO_ROOT = resolve(import.meta.dirname, "../..");
export const TSX = resolve(REPO_ROOT, "node_modules/.bin/tsx");
export const CLI = resolve(REPO_ROOT, "test/testbed/cli.ts");

export interface CliServers {
  child: ChildProcessWithoutNullStreams;
  info: Record<string, any>;
  /** Closes stdin (the CLI then stops everything) and resolves with its exit code. */
  down(): Promise<number | null>;
}

/** Runs `cli.ts up ...args --json` and resolves once its JSON line has arrived. */
export async function cliUp(args: string[]): Promise<CliServers> {
  const child = spawn(TSX, [CLI, "up", ...args, "--json"], { cwd: REPO_ROOT, stdio: "pipe" });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, "exit");
  const lines = createInterface({ input: child.stdout });
  const [line] = (await Promise.race([
    once(lines, "line"),
    exited.then(() => {
      throw new Error(`testbed cli exited early: ${stderr}`);
    }),
  ])) as [string];
  const down = async () => {
    child.stdin.end();
    const [code] = (await exited) as [number | null];
    return code;
  };
  return { child, info: JSON.parse(line) as Record<string, any>, down };
}
