/**
 * One sidecar per runtime directory: an exclusive lock file holding the owner's pid, taken
 * before binding (ZeroMQ would otherwise steal a live sidecar's ipc path) and replaced when stale.
 */
import { readFileSync, unlinkSync } from "node:fs";
import { SidecarError } from "../errors.js";
import { pidAlive } from "../rpc/connection-file.js";
import { writeFileAtomic } from "../util/atomic-write.js";

export function acquireLock(path: string): () => void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileAtomic(path, `${process.pid}\n`, { mode: 0o600, exclusive: true });
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
