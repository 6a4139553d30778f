/**
 * The command lines the pool store runs over exec: each program is a file in src/remote/staging/
 * (its header says what it reads and prints; GNU find/tar/coreutils on the pool), its values
 * given as arguments. `tempName`s and tokens are chosen here, so the sidecar knows what to clean.
 */
import { shCommand } from "../../remote/index.js";

/**
 * Write stdin (exactly `size` bytes when known) to `tmp` beside `path`, hashed as it arrives;
 * prints `size N` and the SHA-256 line; exit 3 on a short stream (remote/staging/put.sh).
 */
export function putCommand(
  path: string,
  tmp: string,
  size: number | undefined,
  mode: number | undefined,
): string {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  return shCommand("staging/put.sh", [
    dir,
    tmp,
    size === undefined ? "-" : size,
    mode === undefined ? "-" : (mode & 0o777).toString(8),
  ]);
}

/** Rename a temporary file into place (remote/staging/commit.sh). */
export function commitCommand(tmp: string, path: string): string {
  return shCommand("staging/commit.sh", [tmp, path]);
}

/** Type, size, mtime, mode of one path; exit 2 when it does not exist (remote/staging/stat.sh). */
export function statCommand(path: string): string {
  return shCommand("staging/stat.sh", [path]);
}

/** NUL-separated listing of a tree (remote/staging/list.sh). */
export function listCommand(root: string): string {
  return shCommand("staging/list.sh", [root]);
}

/** Hash the NUL-separated paths given on stdin, in order (remote/staging/digest.sh). */
export function digestCommand(algo: "sha256" | "md5"): string {
  return shCommand("staging/digest.sh", [algo]);
}

/** The two temporary directories a tree may be extracted into (inside `root` when it exists). */
export function treeTemps(root: string, token: string): { inside: string; beside: string } {
  const slash = root.lastIndexOf("/");
  const parent = root.slice(0, slash) || "/";
  return {
    inside: `${root}/.tree.psc-${token}.tmp`,
    beside: `${parent === "/" ? "" : parent}/.${root.slice(slash + 1)}.psc-${token}.tmp`,
  };
}

/**
 * One exec for a whole tree: `length` bytes of tar then its SHA-256 on stdin, extracted into one
 * of {@link treeTemps} and put in place only when the hashes agree; exit 4 and a `psc-integrity`
 * line when they differ (remote/staging/tree.sh).
 */
export function treeCommand(root: string, token: string, length: number): string {
  const t = treeTemps(root, token);
  const parent = root.slice(0, root.lastIndexOf("/")) || "/";
  return shCommand("staging/tree.sh", [root, t.inside, t.beside, parent, length]);
}

/** Tar the NUL-separated relative names given on stdin (remote/staging/tar.sh). */
export function tarCommand(root: string): string {
  return shCommand("staging/tar.sh", [root]);
}

/** Parse `openssl dgst -r` / `sha256sum` output for `names` given in this order. */
export function parseDigests(
  out: string,
  names: string[],
  algo: "sha256" | "md5",
): Map<string, string> {
  const len = algo === "sha256" ? 64 : 32;
  const res = new Map<string, string>();
  let off = 0;
  for (const name of names) {
    if (out[off] === "\\") off++; // sha256sum escapes odd names with a leading backslash
    const hex = out.slice(off, off + len);
    if (hex.length !== len || !/^[0-9a-f]+$/i.test(hex))
      throw new Error(
        `unexpected ${algo} output for \`${name}\`: ${JSON.stringify(out.slice(off, off + 120))}`,
      );
    res.set(name, hex.toLowerCase());
    // "<hex> *<name>\n" (openssl -r) or "<hex>  <name>\n" (coreutils); names may hold newlines
    const end = off + len + 2 + name.length;
    off = out[end] === "\n" ? end + 1 : out.indexOf("\n", off + len) + 1;
    if (off === 0) off = out.length;
  }
  return res;
}
