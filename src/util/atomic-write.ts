/**
 * Write a file atomically: a temp file in the same directory, flushed to disk, then renamed over
 * the file (or, `exclusive`, linked to it), so that a reader sees the old or the new content,
 * never a part, even after a crash.
 */
import {
  chmodSync,
  closeSync,
  fsyncSync,
  linkSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";

export interface AtomicWriteOptions {
  /**
   * The file's mode, exactly (not reduced by the umask).
   * @default the mode of the file it replaces, else 0o644
   */
  mode?: number;
  /**
   * Never replace: fail with EEXIST when the file exists (a link, not a rename), so that of
   * two writers exactly one publishes (connection file, lock file).
   * @default false
   */
  exclusive?: boolean;
}

/**
 * @example
 * writeFileAtomic(file, `${JSON.stringify(rec)}\n`, { mode: 0o600 });
 */
export function writeFileAtomic(
  file: string,
  data: string | Buffer,
  opts: AtomicWriteOptions = {},
): void {
  let mode = opts.mode;
  if (mode === undefined) {
    try {
      mode = statSync(file).mode & 0o7777;
    } catch {
      mode = 0o644;
    }
  }
  const tmp = join(
    dirname(file),
    `.${basename(file)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`,
  );
  const fd = openSync(tmp, "wx", mode);
  try {
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    // write(2) may write less than asked (a large buffer, a signal): go on until all is out
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    chmodSync(tmp, mode);
    if (opts.exclusive) linkSync(tmp, file);
    else renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  if (opts.exclusive) rmSync(tmp, { force: true });
}
