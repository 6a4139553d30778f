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

/**
 * Pipe `inner` (the side here) and `outer` (the SSH channel) into each other. `bytes_in` counts
 * outer→inner, `bytes_out` inner→outer. Returns a function that destroys both.
 */
export function splice(inner: Duplex, outer: Duplex, stats: SpliceStats, onDone?: () => void): () => void {
  stats.connections++;
  stats.total_connections++;
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    stats.connections--;
    inner.destroy();
    outer.destroy();
    onDone?.();
  };
  pump(outer, inner, (n) => (stats.bytes_in += n));
  pump(inner, outer, (n) => (stats.bytes_out += n));
  inner.on("error", finish);
  outer.on("error", finish);
  inner.on("close", finish);
  outer.on("close", finish);
  return finish;
}
