/**
 * The end-to-end check of a reverse tunnel (docs/tunnels.md, "End-to-end check"): a probe on the
 * head node dials where workers dial and sends `PSC-CHECK <token>`; while a check runs, each
 * connection arriving through the tunnel is held a moment to see whether it is that probe, which
 * the sidecar answers itself (the service never sees it).
 */
import { randomBytes } from "node:crypto";
import type { Duplex } from "node:stream";
import type { SshLease } from "../ssh/connections.js";
import type { DirectListener } from "../ssh/link.js";
import { CHECK_PREFIX, parseLines, probeCommand } from "./pool-commands.js";
import type { CheckResult } from "./types.js";

/** how long a connection that arrives during a check is held to see whether it is the probe */
const CHECK_HOLD_MS = 300;
/** how long after the probe the master's log may take to say how its connection fared */
const DIRECT_LOG_MS = 5_000;

/**
 * A direct forward (the master connects to the service itself): the probe's connection is found
 * in the master's log, by the probe's port when it dials sshd's listener itself (`exact`), else
 * (through a relay, or bash that cannot name its port) as any connection during the probe.
 */
export interface DirectProbe {
  listener: DirectListener;
  exact: boolean;
}

/** The pool-side sshd process of the connection a check ran on, and that machine's boot id. */
export interface PoolSession {
  pid: number;
  bootId: string;
}

export class ReverseCheck {
  /** the tokens of the checks running now, and what marks each one answered */
  private readonly pending = new Map<string, () => void>();

  /**
   * Probe `host:port` from the pool (through whatever workers dial: the relay or sshd's bind).
   * `session` is set when the probe said which sshd process its connection has.
   */
  async run(
    lease: SshLease,
    python: string | undefined,
    host: string,
    port: number,
    direct?: DirectProbe,
  ): Promise<{ result: CheckResult; session?: PoolSession }> {
    const tok = randomBytes(12).toString("hex");
    const t0 = Date.now();
    let answered = false;
    this.pending.set(tok, () => (answered = true));
    try {
      const command = probeCommand(python, host, port, tok, direct !== undefined);
      const r = await lease.exec(command, { timeoutMs: 20_000 });
      const out = parseLines(r.stdout);
      const [pid, bootId] = (out.SESSION ?? "").split(" ");
      const session = Number(pid) > 1 && bootId ? { pid: Number(pid), bootId } : undefined;
      const line = out.RESULT ?? `no result (exit ${r.exitCode}: ${r.stderr.trim().slice(0, 200)})`;
      if (direct && line.startsWith("ok")) {
        const src = Number(out.SRC);
        const from = direct.exact && Number.isInteger(src) && src > 0 ? src : undefined;
        return { result: await directResult(direct.listener, from, t0), session };
      }
      const ok = line.startsWith("ok") && answered;
      const result: CheckResult = ok
        ? { ok, at: Date.now(), ms: Date.now() - t0 }
        : {
            ok,
            at: Date.now(),
            error: line.startsWith("ok")
              ? "the probe was answered by something other than this tunnel"
              : line,
          };
      return { result, session };
    } catch (err) {
      return { result: { ok: false, at: Date.now(), error: (err as Error).message } };
    } finally {
      this.pending.delete(tok);
    }
  }

  /**
   * A connection through the tunnel: a running check's probe is answered `PSC-OK <token>` and
   * closed here; anything else goes to `pass` (paused, with the bytes read while it was held).
   */
  screen(ch: Duplex, pass: (ch: Duplex, head: Buffer | undefined) => void): void {
    if (this.pending.size === 0) return pass(ch, undefined);
    let head = Buffer.alloc(0);
    let decided = false;
    const decide = (): void => {
      if (decided) return;
      decided = true;
      clearTimeout(timer);
      ch.off("data", onData);
      const text = head.toString("latin1");
      const tok = text.startsWith(CHECK_PREFIX)
        ? text.slice(CHECK_PREFIX.length).split("\n")[0]!
        : "";
      const done = this.pending.get(tok);
      if (done && text.includes("\n")) {
        ch.end(`PSC-OK ${tok}\n`);
        done();
        return;
      }
      ch.pause();
      pass(ch, head);
    };
    const onData = (b: Buffer): void => {
      head = Buffer.concat([head, b]);
      const start = head.subarray(0, CHECK_PREFIX.length).toString("latin1");
      if (head.includes(10) || head.length >= 64 || !CHECK_PREFIX.startsWith(start)) decide();
    };
    const timer = setTimeout(decide, CHECK_HOLD_MS);
    ch.on("data", onData);
  }
}

/** What the master's log says of the probe's connection (see DirectProbe). */
async function directResult(
  listener: DirectListener,
  from: number | undefined,
  t0: number,
): Promise<CheckResult> {
  const a = await listener.arrival(from, t0, DIRECT_LOG_MS);
  if (a?.ok) return { ok: true, at: Date.now(), ms: Date.now() - t0 };
  const error = a
    ? `the SSH master could not connect to the service here: ${a.error}`
    : "the probe's connection did not come through this tunnel (something else listens where workers dial?)";
  return { ok: false, at: Date.now(), error };
}
