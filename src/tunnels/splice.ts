/** Joins two byte streams both ways, counting bytes, and tears both down when either ends. */
import type { Duplex } from "node:stream";

export interface SpliceStats {
  bytes_in: number;
  bytes_out: number;
  connections: number;
  total_connections: number;
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
  outer.on("data", (b: Buffer) => {
    stats.bytes_in += b.length;
  });
  inner.on("data", (b: Buffer) => {
    stats.bytes_out += b.length;
  });
  outer.pipe(inner);
  inner.pipe(outer);
  inner.on("error", finish);
  outer.on("error", finish);
  inner.on("close", finish);
  outer.on("close", finish);
  return finish;
}
