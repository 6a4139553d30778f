/**
 * A host the sidecar runs commands on: this machine (`local`) or a pool reached over SSH.
 * Services (tunnels, staging, env, executors, jobs) borrow hosts from the Hosts, which is the
 * only owner of SSH connections, so reconnects happen in one place.
 */
import type { Readable, Writable } from "node:stream";

/** Same shape on success and failure (execa's result is the model). */
export interface ExecResult {
  command: string;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

export interface ExecOptions {
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string | Buffer;
  /** fail (kill the remote process group) after this many ms */
  timeoutMs?: number;
  /** called with each output chunk as it arrives (the result still holds all of it) */
  onOutput?: (stream: "stdout" | "stderr", chunk: Buffer) => void;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  cwd?: string;
  /**
   * takes what the login shell's rc files print on stderr before the command starts, which
   * `stderr` then leaves out (all of it stays in `stderr` if the command never starts): for a
   * caller that counts the command's own bytes, as a worker block does
   */
  onStartup?: (stderr: Buffer) => void;
}

/** A long-running command: streams, and a process group that can be killed whole. */
export interface HostProcess {
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
  /** pid of the process-group leader on the host (the command runs under setsid) */
  pgid: Promise<number>;
  /**
   * `lost`: the channel closed with no exit status, the connection having dropped (the process
   * may live on). Read or resume stdout: like a child process's `close`, this may wait for its end.
   */
  exited: Promise<{ exitCode: number | null; signal: string | null; lost?: boolean }>;
  /** signal the whole process group on the host */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface Host {
  /** `local`, or the ssh target as given (user@host:port or a ~/.ssh/config alias) */
  readonly target: string;
  readonly isLocal: boolean;
  /** run a shell command (POSIX sh) and collect its output */
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /** start a shell command in its own process group and stream it */
  spawn(command: string, opts?: SpawnOptions): Promise<HostProcess>;
}

/** A borrowed host; the SSH connection closes when its last lease is released. */
export interface HostLease extends Host {
  release(): void;
}

export interface Hosts {
  /** `opts.transport`: the pool's SSH_TRANSPORT, for the connection this acquire may open */
  acquire(
    target: string,
    owner: string,
    opts?: { transport?: "auto" | "openssh" | "ssh2" },
  ): Promise<HostLease>;
}

// quoting is the base layer's (src/remote builds command lines with it); here for the services
export { shellQuote } from "../util/shell-quote.js";
