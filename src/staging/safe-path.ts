/** Checks that a name from a listing or an archive stays inside the directory it belongs to. */
import { posix } from "node:path";
import { SidecarError } from "../errors.js";

/**
 * Validate a relative entry name (`/`-separated) and return it normalised. Refuses absolute
 * names, `..` segments, NUL bytes and empty names with STAGING_UNSAFE_PATH.
 */
export function safeRelative(name: string, where: string): string {
  const refuse = (why: string): never => {
    throw new SidecarError(
      "STAGING_UNSAFE_PATH",
      `Refusing the entry \`${printable(name)}\` in ${where}: ${why}; nothing is written outside the destination`,
      {
        data: { entry: printable(name), where },
      },
    );
  };
  if (name.includes("\0")) refuse("it contains a NUL byte");
  if (name.startsWith("/") || /^[A-Za-z]:[\\/]/.test(name)) refuse("it is an absolute name");
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.some((p) => p === "..")) refuse("it has a `..` segment");
  if (parts.some((p) => p.includes("\\"))) refuse("it contains a backslash");
  if (parts.length === 0) refuse("it is empty");
  return parts.join("/");
}

/**
 * Where a symlink at `linkRel` (relative to the root) pointing at `target` resolves, relative to
 * the root; throws STAGING_UNSAFE_PATH when it is absolute or leaves the root.
 */
export function safeSymlinkTarget(linkRel: string, target: string, where: string): string {
  const fail = (why: string): never => {
    throw new SidecarError(
      "STAGING_UNSAFE_PATH",
      `Refusing the symlink \`${printable(linkRel)}\` -> \`${printable(target)}\` in ${where}: ${why}`,
      {
        data: { entry: printable(linkRel), target: printable(target), where },
      },
    );
  };
  if (target.startsWith("/")) fail("it points to an absolute path");
  const resolved = posix.normalize(posix.join(posix.dirname(linkRel), target));
  if (resolved === ".." || resolved.startsWith("../") || resolved.startsWith("/"))
    fail("it points outside the directory");
  return resolved === "." ? "" : resolved;
}

function printable(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it replaces
  return s.replace(/[\0-\x1f\x7f]/g, "?").slice(0, 300);
}
