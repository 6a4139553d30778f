/** The POSIX sh snippets the pool store runs over exec (GNU find/tar/coreutils on the pool). */
import { shellQuote as q } from "../../ssh/host.js";

/** Picks the fastest SHA-256/MD5 tool: openssl (uses SHA-NI), else coreutils. */
export function hashTool(algo: "sha256" | "md5"): string {
  return `if command -v openssl >/dev/null 2>&1; then H="openssl dgst -${algo} -r"; else H="${algo}sum"; fi`;
}

/** Write stdin to a temporary file next to `path`, check its size, print `size N` and its SHA-256. */
export function putScript(path: string, tmp: string, size: number | undefined, mode: number | undefined): string {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  return [
    `d=${q(dir)}; t=${q(tmp)}; n=${size === undefined ? "-" : String(size)}`,
    `mkdir -p -- "$d" || exit 1`,
    `if [ "$n" = "-" ]; then cat > "$t"; else head -c "$n" > "$t"; fi || { rm -f -- "$t"; exit 1; }`,
    `got=$(wc -c < "$t") || { rm -f -- "$t"; exit 1; }; got=$((got + 0))`,
    `if [ "$n" != "-" ] && [ "$got" != "$n" ]; then rm -f -- "$t"; echo "the stream ended after $got of $n bytes (connection lost?)" >&2; exit 3; fi`,
    mode === undefined ? ":" : `chmod ${(mode & 0o777).toString(8)} -- "$t" || { rm -f -- "$t"; exit 1; }`,
    hashTool("sha256"),
    `printf 'size %s\\n' "$got"; $H "$t" || { rm -f -- "$t"; exit 1; }`,
  ].join("\n");
}

/** Rename a temporary file into place. */
export function commitScript(tmp: string, path: string): string {
  return `mv -f -- ${q(tmp)} ${q(path)} || { rm -f -- ${q(tmp)}; exit 1; }`;
}

/** Type, size, mtime, mode of one path (following symlinks); exit 2 when it does not exist. */
export function statScript(path: string): string {
  return `if [ ! -e ${q(path)} ]; then [ -L ${q(path)} ] && echo dangling; exit 2; fi; stat -L -c '%F|%s|%Y|%a' -- ${q(path)}`;
}

/** NUL-separated listing: symlinks with targets, then files and empty directories (following links). */
export function listScript(root: string): string {
  return [
    `cd -- ${q(root)} || exit 1`,
    `find . -mindepth 1 -type l -printf 'L %P\\0%l\\0' || exit 1`,
    `printf '=\\0'`,
    `find -L . -mindepth 1 \\( -type f -printf 'f %s %T@ %m %P\\0' \\) -o \\( -type d -empty -printf 'd 0 %T@ %m %P\\0' \\) -o \\( -type l -printf 'x 0 0 0 %P\\0' \\)`,
  ].join("\n");
}

/** Hash the NUL-separated paths given on stdin, in order. */
export function digestScript(algo: "sha256" | "md5", cwd?: string): string {
  return [cwd ? `cd -- ${q(cwd)} || exit 1` : ":", hashTool(algo), `xargs -0 -r $H`].join("\n");
}

/** Extract a tar from stdin into `tmp` (created). */
export function untarScript(tmp: string): string {
  return `mkdir -p -- ${q(tmp)} || exit 1\nexec tar -x -f - -C ${q(tmp)} --no-same-owner`;
}

/**
 * Put an extracted tree in place: a rename when `root` does not exist yet; otherwise files are
 * hard-linked over the old ones (each replaced whole), falling back to copying.
 */
export function commitTreeScript(tmp: string, root: string, tmpInside: boolean): string {
  const parent = root.slice(0, root.lastIndexOf("/")) || "/";
  const merge = `cp -alf -- ${q(tmp)}/. ${q(root)}/ 2>/dev/null || cp -af -- ${q(tmp)}/. ${q(root)}/ || exit 1; rm -rf -- ${q(tmp)}`;
  if (tmpInside) return merge;
  return `mkdir -p -- ${q(parent)} || exit 1\nif mv -T -- ${q(tmp)} ${q(root)} 2>/dev/null; then exit 0; fi\n${merge}`;
}

/** Tar the NUL-separated relative names given on stdin (regular files; links followed). */
export function tarScript(root: string): string {
  return `cd -- ${q(root)} || exit 1\nexec tar -c -f - --null --no-recursion --dereference --hard-dereference -T -`;
}

/** Parse `openssl dgst -r` / `sha256sum` output for `names` given in this order. */
export function parseDigests(out: string, names: string[], algo: "sha256" | "md5"): Map<string, string> {
  const len = algo === "sha256" ? 64 : 32;
  const res = new Map<string, string>();
  let off = 0;
  for (const name of names) {
    if (out[off] === "\\") off++; // sha256sum escapes odd names with a leading backslash
    const hex = out.slice(off, off + len);
    if (hex.length !== len || !/^[0-9a-f]+$/i.test(hex)) throw new Error(`unexpected ${algo} output for \`${name}\`: ${JSON.stringify(out.slice(off, off + 120))}`);
    res.set(name, hex.toLowerCase());
    // "<hex> *<name>\n" (openssl -r) or "<hex>  <name>\n" (coreutils); names may hold newlines
    const end = off + len + 2 + name.length;
    off = out[end] === "\n" ? end + 1 : out.indexOf("\n", off + len) + 1;
    if (off === 0) off = out.length;
  }
  return res;
}
