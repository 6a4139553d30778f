// Leak checks for tests: processes whose command line mentions a test bed directory.
import { execFileSync } from "node:child_process";
import { markedPids } from "./registry.js";

/** Command lines of processes still running that mention `dir` (like `pgrep -af dir`), plus marked ones. */
export function leftoverProcesses(dir: string): string[] {
  let out = "";
  try {
    out = execFileSync("pgrep", ["-af", dir], { encoding: "utf8" });
  } catch {
    out = ""; // pgrep exits 1 when nothing matches
  }
  const byCmd = out.split("\n").filter((l) => l.trim() !== "");
  const marked = markedPids(dir).map((p) => `${p} (env marker)`);
  return [...byCmd, ...marked];
}
