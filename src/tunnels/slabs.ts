/**
 * Read buffers that come back. Node gives every socket read a new buffer; a durable stream keeps
 * each one until the relay acknowledges it, so the young ones outlive their scavenge, and at
 * 450 MB/s V8 ran a full collection about every 80 ms for the external memory alone (half the
 * sidecar's CPU on that path: docs/benchmarks.md, ## parsl). Here the service's socket reads
 * into slabs of our own, one read after another into the rest of the same slab, and a durable
 * stream hands each chunk back once its bytes are acknowledged; a slab whose chunks have all come
 * back (and that the reader has left) is read into again.
 *
 * The rule that makes reuse safe: every chunk handed out is given back at most once, and only
 * when nothing holds it any more.
 */

/** The size of one slab: Node's own read size, so a read from a fresh slab is as large. */
export const SLAB_BYTES = 64 * 1024;
/** A reader moves to a new slab when less than this is left (reads stay 16-64 KiB). */
export const MIN_TAIL = 16 * 1024;
/** Slabs kept for reuse at most (4 MiB); past it a free slab is left to the collector. */
const KEEP = 64;

const free: Buffer[] = [];
/** Chunks (and the reader) holding each slab, by the slab's memory; only slabs are in it. */
const holders = new WeakMap<ArrayBufferLike, number>();

/** A free slab, or a new one; the caller holds it once. */
export function takeSlab(): Buffer {
  const slab = free.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES);
  holders.set(slab.buffer, 1);
  return slab;
}

function hold(memory: ArrayBufferLike): void {
  holders.set(memory, (holders.get(memory) ?? 0) + 1);
}

/**
 * Give back `chunk` (or any view of it) once nothing holds it; its slab is free when this was
 * the last holder. A buffer not cut from a slab is ignored.
 */
export function giveBack(chunk: Buffer): void {
  const n = holders.get(chunk.buffer);
  if (n === undefined || n <= 0) return;
  if (n > 1) {
    holders.set(chunk.buffer, n - 1);
    return;
  }
  holders.set(chunk.buffer, 0);
  if (free.length < KEEP) free.push(Buffer.from(chunk.buffer, 0, SLAB_BYTES));
}

/** Slabs waiting to be read into again (for tests). */
export function freeSlabs(): number {
  return free.length;
}

/**
 * The `onread` option of net.connect() that reads into slabs and passes each chunk to `onChunk`
 * (the socket then emits no `data` of its own). Each chunk is a view of its slab, held until the
 * receiver gives it back (or drops it, leaving the slab to the collector).
 */
export function slabReader(onChunk: (chunk: Buffer) => void): {
  buffer: () => Buffer;
  callback: (n: number, buf: Buffer) => boolean;
} {
  let slab: Buffer | undefined;
  let used = 0;
  return {
    buffer: () => {
      if (!slab || SLAB_BYTES - used < MIN_TAIL) {
        if (slab) giveBack(slab); // the reader leaves it; its chunks may still hold it
        slab = takeSlab();
        used = 0;
      }
      return slab.subarray(used);
    },
    callback: (n, buf) => {
      used += n;
      hold(buf.buffer);
      onChunk(buf.subarray(0, n));
      return true;
    },
  };
}
