/**
 * One empty session on every new connection that no command of ours used in its first second.
 * sshd turns Nagle's algorithm off for a connection only when the connection's first session
 * starts (session.c calls ssh_packet_set_interactive, which sets TCP_NODELAY). Until then it
 * holds a small packet back while an earlier one is unacknowledged, and the client acknowledges
 * late (~40 ms). A connection that carries only forwards (a reconnect whose tunnels come back by
 * themselves) would stall Parsl's small messages that way: `ssh -N -R` halves parsl-perf here
 * (docs/benchmarks.md, ## parsl).
 */
import type { Duplex, Readable } from "node:stream";
import type { SshLink } from "./link.js";

/** The command: anything sshd starts will do; it is never waited for. */
export const FIRST_SESSION_COMMAND = "exit 0";
/** A pool whose shell startup hangs does not keep the session slot longer than this. */
const GIVE_UP_MS = 30_000;

/**
 * A connection whose first second carries no command of ours gets the empty session then. Most
 * connections run a command at once, which does the same; and on a pool whose shell startup
 * takes a lock (pyenv's rehash), a second session at the same moment can print its warning into
 * the first one's stderr.
 */
export const FIRST_SESSION_DELAY_MS = 1000;

/**
 * After FIRST_SESSION_DELAY_MS, the empty session on connection `gen`, unless `ran(gen)` says a
 * session ran on it meanwhile or the link moved on.
 */
export function firstSessionUnlessUsed(
  link: SshLink,
  gen: number,
  ran: (gen: number) => boolean,
  waitMs: number,
): void {
  setTimeout(() => {
    if (!ran(gen) && link.generation === gen && link.state === "ready")
      openFirstSession(link, waitMs);
  }, FIRST_SESSION_DELAY_MS).unref();
}

/** Read a command's output away and close its stdin: what the empty session needs of a channel. */
export function discard(ch: Duplex & { stderr: Readable }): void {
  ch.on("error", () => undefined);
  ch.stderr.on("error", () => undefined);
  ch.stderr.resume();
  ch.resume();
  ch.end();
}

/** Run one session on the link's current connection, in the background; errors are dropped. */
function openFirstSession(link: SshLink, waitMs: number): void {
  link.exec(FIRST_SESSION_COMMAND, waitMs).then(
    ({ channel, release }) => {
      const stop = setTimeout(() => channel.close(), GIVE_UP_MS);
      stop.unref();
      let released = false;
      const done = (): void => {
        clearTimeout(stop);
        if (!released) release();
        released = true;
      };
      channel.once("close", done);
      channel.once("error", done);
      discard(channel);
    },
    () => undefined, // the connection went, or is closing: the next one runs its own
  );
}
