/** Joins two byte streams both ways, counting bytes, and tears both down when either ends. */
import type { Duplex } from "node:stream";

export interface SpliceStats {
  bytes_in: number;
  bytes_out: number;
  connections: number;
  total_connections: number;
}

/**
 * Copy `from` into `to` with backpressure. Chunks that arrive in the same tick (ssh2 parses every
 * packet of one socket read synchronously) are written with one writev: `to` is corked on the
 * first and uncorked on the next tick, which saves a syscall per 32 KiB SSH packet.
 */
function pump(from: Duplex, to: Duplex, count: (n: number) => void): void {
  let corked = false;
  const uncork = (): void => {
    corked = false;
    to.uncork();
  };
  from.on("data", (b: Buffer) => {
    count(b.length);
    if (!corked) {
      corked = true;
      to.cork();
      setImmediate(uncork);
    }
    if (!to.write(b)) from.pause();
  });
  to.on("drain", () => from.resume());
  from.on("end", () => to.end());
}

/** Data moved this recently (or bytes still waiting to be written) counts as in flight. */
export const IN_FLIGHT_MS = 1000;

/** How a spliced connection ended: when, and whether data was in flight on it then. */
export interface SpliceEnd {
  at: number;
  inFlight: boolean;
}

/** A live splice: call it to destroy both streams. */
export interface Splice {
  (): void;
  /** whether data moved within IN_FLIGHT_MS, or waits to be written, right now */
  inFlight(): boolean;
}

/**
 * Pipe `inner` (the side here) and `outer` (the SSH channel) into each other. `bytes_in` counts
 * outer→inner, `bytes_out` inner→outer. Returns a function that destroys both; `onDone` hears
 * how the connection ended (a dropped SSH connection ends its channels this way too, and
 * whether data was in flight then tells whether something was lost).
 */
export function splice(
  inner: Duplex,
  outer: Duplex,
  stats: SpliceStats,
  onDone?: (end: SpliceEnd) => void,
): Splice {
  stats.connections++;
  stats.total_connections++;
  let done = false;
  let lastData = 0;
  const inFlight = (): boolean =>
    Date.now() - lastData < IN_FLIGHT_MS || inner.writableLength > 0 || outer.writableLength > 0;
  const finish = (clean: boolean): void => {
    if (done) return;
    done = true;
    stats.connections--;
    const end = { at: Date.now(), inFlight: inFlight() };
    settle(inner, clean);
    settle(outer, clean);
    onDone?.(end);
  };
  pump(outer, inner, (n) => {
    stats.bytes_in += n;
    lastData = Date.now();
  });
  pump(inner, outer, (n) => {
    stats.bytes_out += n;
    lastData = Date.now();
  });
  inner.on("error", () => finish(false));
  outer.on("error", () => finish(false));
  inner.on("close", () => finish(true));
  outer.on("close", () => finish(true));
  return Object.assign(() => finish(false), { inFlight });
}

/** How long a stream may take to write out what it holds after its peer closed cleanly. */
export const FLUSH_MS = 30_000;

/**
 * End of a splice for one stream: after the other side closed cleanly (its peer sent the last
 * bytes, then FIN), what this one still holds is written out before it is destroyed: destroying
 * at once dropped the tail of a reply (1 MiB echoed through a relay came back 8 KiB short).
 */
function settle(s: Duplex, clean: boolean): void {
  if (!clean || s.destroyed || s.writableLength === 0 || s.writableFinished) {
    s.destroy();
    return;
  }
  const timer = setTimeout(() => s.destroy(), FLUSH_MS);
  timer.unref();
  const done = (): void => {
    clearTimeout(timer);
    s.destroy();
  };
  s.once("finish", done);
  s.once("error", done);
  s.once("close", () => clearTimeout(timer));
  s.end();
}
