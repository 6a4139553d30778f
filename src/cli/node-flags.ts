/**
 * The Node flags the sidecar runs with, read from its bin's shebang (`#!/usr/bin/env -S node
 * FLAGS`, src/cli/launcher.ts). The shebang is the one place they are written: a start through
 * `node FILE` (`serve --detach`, the benches, the Python launcher) passes what it says.
 */
import { closeSync, openSync, readSync } from "node:fs";

const SHEBANG = /^#!\S*\benv\s+-S\s+node((?:\s+--[\w-]+(?:=\S+)?)*)\s*$/;

/** The flags after `node` in `script`'s shebang; none when it has no such line or is unreadable. */
export function nodeFlags(script: string): string[] {
  let head: string;
  try {
    const fd = openSync(script, "r");
    try {
      const buf = Buffer.alloc(256);
      head = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    return [];
  }
  const flags = SHEBANG.exec(head.split("\n", 1)[0]!)?.[1];
  return flags ? flags.trim().split(/\s+/) : [];
}
