/** The POSIX sh snippets the pool store runs over exec (GNU find/tar/coreutils on the pool). */
import { shellQuote as q } from "../../ssh/host.js";

/** Picks the fastest SHA-256/MD5 tool: openssl (uses SHA-NI), else coreutils. */
export function hashTool(algo: "sha256" | "md5"): string {
  return `if command -v openssl >/dev/null 2>&1; then H="openssl dgst -${algo} -r"; else H="${algo}sum"; fi`;
}

/**
 * Write stdin (exactly `size` bytes when known) to a temporary file next to `path` while `tee`
 * feeds a copy to openssl (overlapping hashing with the transfer); check the file's size and
 * print `size N` and the SHA-256 of what was received. A short or failed write removes the file.
 */
export function putScript(
  path: string,
  tmp: string,
  size: number | undefined,
  mode: number | undefined,
): string {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  return [
    `d=${q(dir)}; t=${q(tmp)}; n=${size === undefined ? "-" : String(size)}`,
    `mkdir -p -- "$d" || exit 1`,
    hashTool("sha256"),
    // tee reads the channel itself (no head/cat in front: one copy of every byte less on the
    // pool); a stream longer or shorter than n is caught by the size check below
    `sum=$( { tee -- "$t" || : > "$t.failed"; } | $H ) || { rm -f -- "$t" "$t.failed"; exit 1; }`,
    `if [ -e "$t.failed" ]; then rm -f -- "$t" "$t.failed"; exit 1; fi`,
    `got=$(wc -c < "$t") || { rm -f -- "$t"; exit 1; }; got=$((got + 0))`,
    `if [ "$n" != "-" ] && [ "$got" != "$n" ]; then rm -f -- "$t"; echo "received $got bytes where $n were sent (connection lost, or the source changed?)" >&2; exit 3; fi`,
    mode === undefined
      ? ":"
      : `chmod ${(mode & 0o777).toString(8)} -- "$t" || { rm -f -- "$t"; exit 1; }`,
    `printf 'size %s\\n%s\\n' "$got" "$sum"`,
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
 * One exec for a whole tree. stdin carries exactly `length` bytes of tar archive, then the
 * SHA-256 (64 hex digits) the sender computed over them. The archive is extracted into a
 * temporary directory while `tee` feeds a second copy to openssl (sha256sum without it); only
 * when tar succeeded and both hashes agree is the tree put in place: a rename when `root` does
 * not exist, else each file hard-linked (or copied) over the old one. Exit 4 on a mismatch.
 * Needs GNU dd (`iflag=count_bytes`) to stop at the archive's end without reading past it.
 */
export function treeScript(root: string, token: string, length: number): string {
  const t = treeTemps(root, token);
  const parent = root.slice(0, root.lastIndexOf("/")) || "/";
  const merge = `{ cp -alf -- "$tmp"/. "$root"/ 2>/dev/null || cp -af -- "$tmp"/. "$root"/; } || { rm -rf -- "$tmp"; exit 1; }; rm -rf -- "$tmp"`;
  return [
    `root=${q(root)}`,
    `if [ -d "$root" ]; then tmp=${q(t.inside)}; inside=1; else tmp=${q(t.beside)}; inside=0; mkdir -p -- ${q(parent)} || exit 1; fi`,
    `mkdir -p -- "$tmp" || exit 1`,
    `fifo="$tmp.fifo"; sum="$tmp.sum"`,
    `mkfifo "$fifo" || { rm -rf -- "$tmp"; exit 1; }`,
    `if command -v openssl >/dev/null 2>&1; then H="openssl dgst -sha256 -r"; else H="sha256sum"; fi`,
    `$H < "$fifo" > "$sum" &`,
    `dd iflag=count_bytes,fullblock count=${length} bs=1M 2>/dev/null | tee "$fifo" | { tar -x -f - -C "$tmp" --no-same-owner; st=$?; cat > /dev/null; exit $st; }`,
    `st=$?; wait; rm -f -- "$fifo"`,
    `if [ "$st" != 0 ]; then rm -rf -- "$tmp" "$sum"; exit 1; fi`,
    `want=$(head -c 64); got=$(cut -c1-64 < "$sum"); rm -f -- "$sum"`,
    `if [ "$want" != "$got" ]; then echo "psc-integrity got=$got sent=$want"; rm -rf -- "$tmp"; exit 4; fi`,
    `if [ "$inside" = 1 ]; then ${merge}`,
    `elif ! mv -T -- "$tmp" "$root" 2>/dev/null; then ${merge}`,
    `fi`,
  ].join("\n");
}

/** Tar the NUL-separated relative names given on stdin (regular files; links followed). */
export function tarScript(root: string): string {
  return `cd -- ${q(root)} || exit 1\nexec tar -c -f - --null --no-recursion --dereference --hard-dereference -T -`;
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
