/** Where the sidecar keeps state that outlives one process (job records, environment stamps). */
import { homedir } from "node:os";
import { join } from "node:path";
import { ensurePrivateDir } from "./private-dir.js";

export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PARSL_SIDECAR_STATE_DIR) return env.PARSL_SIDECAR_STATE_DIR;
  const base = env.XDG_STATE_HOME ?? join(homedir(), ".local", "state");
  return join(base, "parsl-sidecar");
}

export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  return ensurePrivateDir(defaultStateDir(env));
}
