/**
 * The command line of every remote command: the script (with its `cd`/`export` prefix) under the
 * POSIX sh wrapper src/remote/ssh/wrapper.sh, so that it has its own process group whose id the
 * sidecar learns and can signal whole with `kill -SIG -PGID`.
 *
 * Pattern (relied on by jobs and executors through HostProcess.pgid/kill):
 *   exec sh -c '<wrapper.sh>' parsl-sidecar-wrapper '<script>'
 * The wrapper checks that its shell leads its process group (OpenSSH's sshd starts each session
 * command with setsid(), so it does); if not and setsid(1) exists it re-executes under setsid.
 * It then prints `\x1epgid=<pid>` as the first line of stderr (stripped before anyone sees
 * stderr) and runs the script with `exec sh -c`. Children and grandchildren inherit the group
 * unless they call setsid themselves. Killing: a separate exec runs `kill -SIG -PGID`.
 */
import { SidecarError } from "../errors.js";
import { shCommand } from "../remote/index.js";
import { shellQuote } from "./host.js";

export const PGID_MARK = "\x1epgid=";

/**
 * Prefix a script with `cd` and `export` lines: one short line per value, each quoted, which
 * the script's own shell runs before it (so the exports reach the script and its children).
 */
export function buildScript(
  command: string,
  opts: { env?: Record<string, string> | undefined; cwd?: string | undefined } = {},
): string {
  const lines: string[] = [];
  if (opts.cwd !== undefined) lines.push(`cd -- ${shellQuote(opts.cwd)} || exit 1`);
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
      throw new SidecarError(
        "INVALID_ARGUMENT",
        `Expected environment variable names to match [A-Za-z_][A-Za-z0-9_]*, got \`${k}\``,
        { data: { name: k } },
      );
    }
    lines.push(`${k}=${shellQuote(v)}; export ${k}`);
  }
  lines.push(command);
  return lines.join("\n");
}

/** The command line sent over SSH for `script`. */
export function wrapRemote(script: string): string {
  return `exec ${shCommand("ssh/wrapper.sh", [script])}`;
}

/** `kill -SIG -PGID`, quietly (the group may be gone already). */
export function killGroupCommand(pgid: number, signal: string): string {
  const sig = signal.replace(/^SIG/, "");
  if (!/^[A-Z0-9]+$/.test(sig))
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected a signal name like TERM or KILL, got \`${signal}\``,
    );
  if (!Number.isInteger(pgid) || pgid <= 1)
    throw new SidecarError("INVALID_ARGUMENT", `Refusing to signal process group \`${pgid}\``);
  return `kill -${sig} -${pgid} 2>/dev/null; exit 0`;
}

/**
 * Splits the pgid line off the front of a stderr stream. `push` returns what belongs to the
 * caller's stderr.
 */
export class PgidSniffer {
  private head = Buffer.alloc(0);
  private done = false;
  pgid: number | undefined;

  constructor(private readonly onPgid: (pgid: number | undefined) => void) {}

  push(chunk: Buffer): Buffer {
    if (this.done) return chunk;
    this.head = Buffer.concat([this.head, chunk]);
    const nl = this.head.indexOf(10);
    if (nl < 0 && this.head.length < 64) return Buffer.alloc(0);
    this.done = true;
    const first = this.head.subarray(0, Math.max(nl, 0)).toString("latin1");
    if (first.startsWith(PGID_MARK)) {
      this.pgid = Number(first.slice(PGID_MARK.length));
      this.onPgid(Number.isInteger(this.pgid) ? this.pgid : undefined);
      return this.head.subarray(nl + 1);
    }
    this.onPgid(undefined);
    return this.head;
  }

  /** stream ended: anything still held is the caller's */
  end(): Buffer {
    if (this.done) return Buffer.alloc(0);
    this.done = true;
    this.onPgid(undefined);
    return this.head;
  }
}
