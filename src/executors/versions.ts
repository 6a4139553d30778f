/** Python and Parsl versions of an interpreter, here or on a pool: one small probe script. */
import { programText } from "../remote/index.js";

export interface PythonVersions {
  python: string;
  /** null when Parsl cannot be imported */
  parsl: string | null;
  executable: string;
  /** why parsl could not be imported */
  parslError?: string;
}

/**
 * The probe (src/remote/executors/versions.py): prints one JSON line; runs on Python 2.7 too,
 * so that an old python3 still answers.
 */
export const VERSION_PROBE = programText("executors/versions.py");

/** Find the probe's line in a command's output (a login banner or WORKER_INIT may print too). */
export function parseVersionProbe(stdout: string): PythonVersions | undefined {
  const line = stdout.split("\n").find((l) => l.startsWith("PSC-VERSIONS "));
  if (!line) return undefined;
  try {
    return JSON.parse(line.slice("PSC-VERSIONS ".length)) as PythonVersions;
  } catch {
    return undefined;
  }
}

/** Python minor (3.11) of a full version (3.11.2). */
export function pythonMinor(v: string): string {
  return v.split(".").slice(0, 2).join(".");
}

/** The interpreter that runs workflows here: PARSL_SIDECAR_PYTHON, else python3. */
export function localPython(env: NodeJS.ProcessEnv = process.env): string {
  return env.PARSL_SIDECAR_PYTHON || "python3";
}

/** Versions of a Python on this machine, or undefined when it cannot run. */
export async function localVersions(python = localPython()): Promise<PythonVersions | undefined> {
  try {
    // loaded here: execa costs ~100 ms of start-up that the sidecar should not pay up front
    const { execa } = await import("execa");
    const res = await execa(python, ["-c", VERSION_PROBE], { timeout: 20_000, reject: false });
    return parseVersionProbe(res.stdout);
  } catch {
    return undefined;
  }
}
