/**
 * A worker block's record: what status queries see (BlockInfo), what the manager keeps of it
 * while it runs (Block), and its output passed from a channel to files here and to its tail.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import type { EventBus } from "../events.js";
import type { HostLease, HostProcess } from "../ssh/host.js";
import type { Logger } from "../util/logger.js";

export type BlockState = "running" | "completed" | "failed" | "cancelled";

export interface BlockInfo {
  id: string;
  target: string;
  owner: string;
  label: string;
  state: BlockState;
  pgid: number | null;
  exit_code: number | null;
  signal: string | null;
  started_at: number;
  ended_at: number | null;
  /** the last lines of stderr (and stdout), for error messages */
  tail: string;
}

export interface Block {
  info: BlockInfo;
  proc: HostProcess;
  lease: HostLease;
  cancelling: boolean;
  files: WriteStream[];
  /** where its output goes here (Parsl reads them) */
  paths: { stdout?: string | undefined; stderr?: string | undefined };
  /** bytes of each stream received so far (a re-attached tail resumes after them) */
  seen: { stdout: number; stderr: number };
  /** its channel went with a dropped connection; the group is watched over new ones, and its
   * output files on the pool are followed again over a new channel (`follower`) */
  detached?: {
    timer: NodeJS.Timeout;
    probing: boolean;
    follower?: HostProcess | undefined;
    nothingToFollow?: boolean;
    restTries: number;
  };
  /** a cancel is signalling its group right now (a look then leaves the signals to it) */
  signalling?: boolean;
  /** the grace its cancel gave it between TERM and KILL */
  cancelGraceMs?: number;
  /** when a look that found it alive after its cancel sent TERM again (resignal) */
  resentAt?: number;
}

/** What the parts of the lifecycle share with the manager: its log, its events and ending. */
export interface BlockHooks {
  log: Logger;
  events: EventBus;
  /** the block ended (a second call does nothing): its files and lease go, an event tells */
  ended(block: Block, exitCode: number | null, signal: string | null, error?: string): void;
}

/**
 * Called before a block of `owner` starts on the pool `target`; resolves with environment for
 * its processes. The composition root gives a job's blocks the job's marker, and first makes sure
 * the job's watchdog runs on that pool, so a block never runs there without something that ends
 * it with the job (also when this sidecar dies the moment the block started).
 */
export type BlockEnv = (owner: string, target: string) => Promise<Record<string, string>>;

export interface StartBlock {
  target: string;
  /** a bash script (Parsl's launcher output, after worker_init) */
  script: string;
  owner: string;
  label: string;
  /** directory on the pool to run in (created) */
  cwd?: string | undefined;
  /** files on this machine receiving the block's output (Parsl's JobStatus reads them) */
  stdout_path?: string | undefined;
  stderr_path?: string | undefined;
}

const TAIL_BYTES = 4096;

/** Add a line to what error messages show of a block, keeping the last TAIL_BYTES. */
export function addToTail(info: BlockInfo, text: string): void {
  info.tail = `${info.tail}\n${text}`.slice(-TAIL_BYTES);
}

/** How a block ended, from the status file its shell left (`<status> <signal name or ->`). */
export function parseBlockStatus(
  line: string,
): { exitCode: number | null; signal: string | null } | undefined {
  const m = /^(\d{1,3}) ([A-Z][A-Z0-9+-]*|-)$/.exec(line.trim());
  if (!m) return undefined;
  return m[2] === "-"
    ? { exitCode: Number(m[1]), signal: null }
    : { exitCode: null, signal: `SIG${m[2]}` };
}

/**
 * Pass a channel's output to the block's files here and its tail, counting the bytes. Returns
 * where the login shell's own lines go (spawn's `onStartup`): to the stderr file and the tail,
 * uncounted, since the block's files on the pool, which `seen` indexes, never had them.
 */
export function capture(block: Block, proc: HostProcess): (startup: Buffer) => void {
  let errFile: WriteStream | undefined;
  const show = (chunk: Buffer): void => {
    block.info.tail = (block.info.tail + chunk.toString("utf8")).slice(-TAIL_BYTES);
  };
  for (const which of ["stdout", "stderr"] as const) {
    const path = block.paths[which];
    const file = path ? createWriteStream(path, { flags: "a", mode: 0o600 }) : undefined;
    if (file) {
      file.on("error", () => undefined);
      block.files.push(file);
      if (which === "stderr") errFile = file;
    }
    proc[which].on("data", (chunk: Buffer) => {
      block.seen[which] += chunk.length;
      file?.write(chunk);
      show(chunk);
    });
    if (file) {
      // each channel's files close with it: a detached block follows its output over one new
      // channel after another, and must not hold a descriptor per channel it ever had
      const done = (): void => {
        const i = block.files.indexOf(file);
        if (i >= 0) block.files.splice(i, 1);
        file.end();
      };
      proc[which].once("end", done).once("close", done);
    }
  }
  return (startup) => {
    if (errFile && !errFile.writableEnded) errFile.write(startup);
    show(startup);
  };
}
