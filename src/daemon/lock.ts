/**
 * One sidecar per runtime directory: an exclusive lock file holding the owner's pid, taken
 * before binding (ZeroMQ would otherwise steal a live sidecar's ipc path) and replaced when stale.
 */
import { linkSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { SidecarError } from "../errors.js";
import { pidAlive } from "../rpc/connection-file.js";

export function acquireLock(path: string): () => void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(tmp, path);
        return () => release(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        const owner = Number.parseInt(readSafe(path), 10);
        if (Number.isInteger(owner) && owner > 0 && pidAlive(owner)) {
          throw new SidecarError(
            "ALREADY_RUNNING",
            `A sidecar is already running in this runtime directory (pid ${owner}). Stop it with \`parsl-sidecar stop\`, or pass --runtime-dir for a second one.`,
            { data: { pid: owner } },
          );
        }
        try {
          unlinkSync(path); // stale: its owner is gone
        } catch {
          /* raced with another cleaner */
        }
      }
    }
    throw new SidecarError("ALREADY_RUNNING", `Could not take the lock ${path}`);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* gone */
    }
  }
}

function readSafe(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function release(path: string): void {
  if (readSafe(path).trim() === String(process.pid)) {
    try {
      unlinkSync(path);
    } catch {
      /* gone */
    }
  }
}
