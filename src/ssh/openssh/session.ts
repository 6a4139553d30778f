/**
 * A remote command through the master as a SessionChannel:
 *   ssh -S SOCKET -o ControlMaster=no -T -o ProxyCommand=false TARGET -- 'exec sh -c SESSION_SH ...'
 * OpenSSH's client does not pass on the exit-signal message (its exit code is 255 then, as for
 * a lost connection), so the command runs under src/remote/ssh/session.sh, which reports on
 * stderr that the session opened and how the command ended (a signal from status 128+N, N 1-15). When
 * the master refuses a session, ssh would fall back to a connection of its own; the
 * ProxyCommand `false` makes that fail at once instead.
 */
import { spawn } from "node:child_process";
import type { PassThrough } from "node:stream";
import { SidecarError } from "../../errors.js";
import { shCommand } from "../../remote/index.js";
import type { SessionChannel } from "../link.js";
import { ChildChannel } from "./channel.js";

export const OPEN_MARK = "\x1epsc:open\n";
const RS = String.fromCharCode(0x1e);
const STATUS_RE = new RegExp(`${RS}psc:(?:exit=(\\d+)|signal=([A-Z0-9+-]+))\n`, "g");
/** a status line is this long at most; a held tail longer than this is the caller's */
const MARK_MAX = 40;

/** The command line sent for `command`: it under session.sh. */
export function sessionCommand(command: string): string {
  return `exec ${shCommand("ssh/session.sh", [command])}`;
}

/** Splits session.sh's lines off a stderr stream; `out` receives the caller's bytes. */
export class StatusFilter {
  opened = false;
  status: { code: number | null; signal?: string } | undefined;
  private pre: Buffer = Buffer.alloc(0);
  private hold: Buffer = Buffer.alloc(0);

  constructor(
    private readonly out: (b: Buffer) => void,
    private readonly onOpen: () => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.opened) return this.scan(Buffer.concat([this.hold, chunk]));
    this.pre = Buffer.concat([this.pre, chunk]);
    const i = this.pre.indexOf(OPEN_MARK, 0, "latin1");
    if (i < 0) return;
    this.opened = true;
    const before = this.pre.subarray(0, i);
    const rest = this.pre.subarray(i + OPEN_MARK.length);
    this.pre = Buffer.alloc(0);
    this.onOpen();
    if (before.length > 0) this.out(before);
    this.scan(rest);
  }

  /** the stream ended: what was held is the caller's; before the open, all of it (ssh's words) */
  end(): string {
    if (!this.opened) return this.pre.toString("utf8");
    if (this.hold.length > 0) this.out(this.hold);
    this.hold = Buffer.alloc(0);
    return "";
  }

  private scan(buf: Buffer): void {
    const s = buf.toString("latin1");
    let last = 0;
    STATUS_RE.lastIndex = 0;
    for (let m = STATUS_RE.exec(s); m; m = STATUS_RE.exec(s)) {
      if (m.index > last) this.out(buf.subarray(last, m.index));
      this.status = m[2] ? { code: null, signal: m[2] } : { code: Number(m[1]) };
      last = m.index + m[0].length;
    }
    const rs = s.lastIndexOf(RS);
    const cut = rs >= last && s.length - rs < MARK_MAX && !s.includes("\n", rs) ? rs : s.length;
    if (cut > last) this.out(buf.subarray(last, cut));
    this.hold = buf.subarray(cut);
  }
}

/** Why a session did not open: refused by sshd (MaxSessions), no master, or another reason. */
export class SessionOpenError extends Error {
  constructor(
    readonly kind: "refused" | "no-master" | "failed",
    readonly said: string,
  ) {
    super(said || `ssh exited without a message (${kind})`);
  }
}

export function classifyOpenFailure(said: string): SessionOpenError {
  if (/Session open refused|open failed|administratively prohibited/i.test(said))
    return new SessionOpenError("refused", said.trim());
  if (
    /Control socket connect|kex_exchange_identification|ssh_exchange_identification|Connection closed by UNKNOWN|read from master failed|hello exchange failed|Control master/i.test(
      said,
    )
  )
    return new SessionOpenError("no-master", said.trim());
  return new SessionOpenError("failed", said.trim());
}

/** A running remote command; `exit` (code, signal) comes from session.sh's last line. */
export class OpenSshSession extends ChildChannel implements SessionChannel {
  private status!: StatusFilter;
  private opened!: Promise<void>;

  /**
   * Start `ssh ARGS` (ending with the command from sessionCommand); `stdin` a file descriptor
   * to read instead of the channel's writes (the master then reads the file itself).
   */
  static start(
    sshPath: string,
    args: string[],
    opts: { stdin?: number; openTimeoutMs: number },
  ): OpenSshSession {
    const child = spawn(sshPath, args, { stdio: [opts.stdin ?? "pipe", "pipe", "pipe"] });
    const s = new OpenSshSession(child);
    s.watch(opts.openTimeoutMs);
    return s;
  }

  private watch(openTimeoutMs: number): void {
    const err = this.stderr as PassThrough;
    let onOpen!: () => void;
    let onFail!: (e: Error) => void;
    this.opened = new Promise<void>((res, rej) => {
      onOpen = res;
      onFail = rej;
    });
    this.opened.catch(() => undefined);
    this.status = new StatusFilter((b) => err.write(b), onOpen);
    this.child.stderr!.on("data", (b: Buffer) => this.status.push(b));
    this.child.on("error", (e) => onFail(e));
    this.child.on("close", () => {
      if (!this.status.opened) onFail(classifyOpenFailure(this.status.end()));
    });
    const timer = setTimeout(() => {
      onFail(
        new SessionOpenError(
          "failed",
          `the remote shell did not start the command within ${openTimeoutMs} ms`,
        ),
      );
      this.close();
    }, openTimeoutMs);
    const clear = (): void => clearTimeout(timer);
    this.opened.then(clear, clear);
  }

  /** resolves once the command runs remotely; rejects with a SessionOpenError */
  whenOpen(): Promise<void> {
    return this.opened;
  }

  protected override finish(code: number | null, signal: NodeJS.Signals | null): void {
    this.status.end();
    const st = this.status.status;
    if (st) {
      if (st.signal) this.emit("exit", null, st.signal);
      else this.emit("exit", st.code);
    }
    super.finish(code, signal);
  }
}

/** The error for a session that could not be opened for a reason other than a refusal. */
export function openFailed(target: string, e: SessionOpenError): SidecarError {
  return new SidecarError(
    "SSH_EXEC",
    `Cannot start a remote command on \`${target}\` through its ControlMaster: ${e.said || e.message}`,
    { cause: e, data: { target } },
  );
}
