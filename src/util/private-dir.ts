/** A directory only its owner can enter: created 0700, refused when it belongs to someone else. */
import { chmodSync, lstatSync, mkdirSync } from "node:fs";
import { SidecarError } from "../errors.js";

/** Create (or check) a private directory: owned by us, mode 0700. */
export function ensurePrivateDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new SidecarError("BAD_CONNECTION_FILE", `${dir} is not a directory`);
  if (process.getuid && st.uid !== process.getuid()) {
    throw new SidecarError(
      "BAD_CONNECTION_FILE",
      `Runtime directory ${dir} belongs to uid ${st.uid}, not to you; set PARSL_SIDECAR_RUNTIME_DIR to a directory of your own`,
    );
  }
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  return dir;
}
