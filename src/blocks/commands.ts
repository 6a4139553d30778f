/**
 * The command lines that run a block's program on its pool (src/remote/blocks/block.sh, which
 * says what each command does and prints). The block id, pgid, offsets, signal and the user's
 * script reach it as arguments; the ones checked here are checked again there.
 */
import { SidecarError } from "../errors.js";
import { shCommand } from "../remote/index.js";
import { shellQuote } from "../util/shell-quote.js";

/**
 * Environment variable every process of a block inherits: `PARSL_SIDECAR_BLOCK=<id>`
 * (block.sh looks for this name).
 */
export const BLOCK_MARK = "PARSL_SIDECAR_BLOCK";

function blockId(id: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(id))
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected a block id of letters, digits, - and _, got \`${id}\``,
    );
  return id;
}

function groupId(pgid: number): number {
  if (!Number.isInteger(pgid) || pgid <= 1)
    throw new SidecarError("INVALID_ARGUMENT", `Refusing to look for process group \`${pgid}\``);
  return pgid;
}

function offset(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new SidecarError("INVALID_ARGUMENT", `Expected a byte offset, got \`${n}\``);
  return n;
}

/**
 * Runs a block's script (bash) so that it outlives its SSH channel, writing its output and
 * status to files on the pool (block.sh `run`). `exec`: the program takes the place of the
 * shell that leads the block's process group, so a TERM to the group reaches it, and its exit
 * status or signal is the channel's.
 */
export function survivingCommand(id: string, script: string): string {
  return `exec ${shCommand("blocks/block.sh", ["run", blockId(id), script])}`;
}

/** Prints `elsewhere`, `alive`, or `gone` and the status line the block's shell left. */
export function lookCommand(id: string, pgid: number): string {
  return shCommand("blocks/block.sh", ["look", blockId(id), groupId(pgid)]);
}

/**
 * Follows a block's output files from the bytes already received until its shell ends; exits
 * 3 when there are no files (nothing to follow), 4 when another host or no shell is left.
 */
export function followCommand(
  id: string,
  pgid: number,
  seen: { stdout: number; stderr: number },
): string {
  return shCommand("blocks/block.sh", [
    "follow",
    blockId(id),
    groupId(pgid),
    offset(seen.stdout),
    offset(seen.stderr),
  ]);
}

/** Prints what a block's files hold after the bytes already received. */
export function restCommand(id: string, seen: { stdout: number; stderr: number }): string {
  return shCommand("blocks/block.sh", [
    "rest",
    blockId(id),
    offset(seen.stdout),
    offset(seen.stderr),
  ]);
}

/** Signals a block's group, only while a process carrying the block's marker is still there. */
export function signalCommand(id: string, pgid: number, signal: "TERM" | "KILL"): string {
  return shCommand("blocks/block.sh", ["signal", blockId(id), groupId(pgid), signal]);
}

/** Removes a block's files on its pool. */
export function removeCommand(id: string): string {
  return shCommand("blocks/block.sh", ["remove", blockId(id)]);
}

/** A directory for a shell command line; a leading ~/ stays expandable. */
export function remoteDir(path: string): string {
  if (path === "~" || path === "$HOME") return '"$HOME"';
  const m = /^(~|\$HOME)\/(.*)$/.exec(path);
  return m ? `"$HOME"/${shellQuote(m[2]!)}` : shellQuote(path);
}
