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

/** startup output (a login shell's rc files) let through before the sniffer stops looking */
const STARTUP_MAX = 64 * 1024;

/**
 * Splits the pgid line off a stderr stream. The wrapper prints it before the script runs, but
 * the login shell's rc files run before the wrapper (bash sources ~/.bashrc for an sshd
 * command) and may write lines first, as ssh shows them: those pass through at once. `push`
 * returns what belongs to the caller's stderr; a partial line that may be the mark is held.
 */
export class PgidSniffer {
  private head: Buffer = Buffer.alloc(0);
  private done = false;
  private passed = 0;
  pgid: number | undefined;

  /** `onStartup`: hold what comes before the mark and hand it there once the mark arrives */
  constructor(
    private readonly onPgid: (pgid: number | undefined) => void,
    private readonly onStartup?: (startup: Buffer) => void,
  ) {}

  push(chunk: Buffer): Buffer {
    if (this.done) return chunk;
    const buf = this.head.length > 0 ? Buffer.concat([this.head, chunk]) : chunk;
    const s = buf.toString("latin1");
    const after = s.indexOf(`\n${PGID_MARK}`); // the mark at the start of a later line
    const found = s.startsWith(PGID_MARK) ? 0 : after < 0 ? -1 : after + 1;
    let keep = buf.length; // where the held part starts
    if (found >= 0) {
      const nl = s.indexOf("\n", found);
      if (nl >= 0) {
        this.done = true;
        this.head = Buffer.alloc(0);
        const n = Number(s.slice(found + PGID_MARK.length, nl));
        this.pgid = Number.isInteger(n) && n > 1 ? n : undefined;
        this.onPgid(this.pgid);
        if (this.onStartup) {
          if (found > 0) this.onStartup(buf.subarray(0, found));
          return buf.subarray(nl + 1);
        }
        return Buffer.concat([buf.subarray(0, found), buf.subarray(nl + 1)]);
      }
      if (s.length - found < 64) keep = found;
    } else {
      // the last line, unfinished, may still become the mark
      const last = s.lastIndexOf("\n") + 1;
      if (PGID_MARK.startsWith(s.slice(last))) keep = last;
    }
    if (this.onStartup) {
      this.head = buf;
      if (buf.length > STARTUP_MAX) return this.giveUp(buf);
      return Buffer.alloc(0);
    }
    this.passed += keep;
    this.head = buf.subarray(keep);
    if (this.passed > STARTUP_MAX) return this.giveUp(buf);
    return buf.subarray(0, keep);
  }

  private giveUp(buf: Buffer): Buffer {
    this.done = true;
    this.head = Buffer.alloc(0);
    this.onPgid(undefined);
    return buf;
  }

  /** stream ended: anything still held is the caller's */
  end(): Buffer {
    if (this.done) return Buffer.alloc(0);
    this.done = true;
    this.onPgid(undefined);
    return this.head;
  }
}
