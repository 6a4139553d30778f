/**
 * The Node flags the sidecar runs with, read from its bin's shebang (`#!/usr/bin/env -S node
 * FLAGS`, src/cli/launcher.ts). The shebang is the one place they are written: a start through
 * `node FILE` (`serve --detach`, the benches, the Python launcher) passes what it says.
 */
import { readFileSync } from "node:fs";

const SHEBANG = /^#!\S*\benv\s+-S\s+node((?:\s+--[\w-]+(?:=\S+)?)*)\s*$/;

/** The flags after `node` in `script`'s shebang; none when it has no such line or is unreadable. */
export function nodeFlags(script: string): string[] {
  let first: string;
  try {
    first = readFileSync(script, "utf8").split("\n", 1)[0]!;
  } catch {
    return [];
  }
  const flags = SHEBANG.exec(first)?.[1];
  return flags ? flags.trim().split(/\s+/) : [];
}
