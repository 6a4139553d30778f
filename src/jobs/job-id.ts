/** Job ids: `job-<name or cwd basename>-<yyyymmdd-hhmmss>-<random>`, or a name the user chose with --job. */
import { randomBytes } from "node:crypto";
import { basename } from "node:path";
import { SidecarError } from "../errors.js";

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Whether `s` has the shape of a job id (also a record's file name: no slashes). */
export function isJobId(s: string): boolean {
  return ID_RE.test(s);
}

/** Check a job id given by the user (also used for the record's file name, so no slashes). */
export function checkJobId(id: string): string {
  if (!isJobId(id)) {
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected \`--job\` to be 1-100 letters, digits, '.', '_' or '-' starting with a letter or digit; got \`${id}\``,
    );
  }
  return id;
}

function slug(s: string): string {
  const out = s
    .replace(/[^A-Za-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40);
  return out || "job";
}

function stamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** A fresh job id for a run started in `cwd`. */
export function newJobId(cwd: string, now = new Date()): string {
  return `job-${slug(basename(cwd))}-${stamp(now)}-${randomBytes(3).toString("hex")}`;
}
