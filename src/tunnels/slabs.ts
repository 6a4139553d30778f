/**
 * Read buffers that come back. Node gives every socket read a new buffer; a durable stream keeps
 * each one until the relay acknowledges it, so at hundreds of MB/s the young ones outlive their
 * scavenge and V8 runs a full collection about every 64 MB for the external memory alone (half
 * the sidecar's CPU on that path: docs/benchmarks.md, ## parsl). Here the service's socket reads
 * into slabs of our own, and a durable stream hands each slab back once its bytes are
 * acknowledged, so the same few are read into again.
 *
 * The rule that makes reuse safe: a slab given to a reader belongs to the one chunk made of it
 * until whoever keeps that chunk gives it back, and nothing else may hold the chunk then.
 */

/** The size of one slab: Node's own read size, so reads are as large as without slabs. */
export const SLAB_BYTES = 64 * 1024;
/** A read shorter than this is copied out (Node's pooled small buffers) and its slab read into again. */
export const COPY_BELOW = 4 * 1024;
/** Slabs kept for reuse at most (4 MiB); past it a returned slab is left to the collector. */
const KEEP = 64;

const free: Buffer[] = [];
/** Every slab's memory, so that only slabs come back into the free list. */
const ours = new WeakSet<ArrayBufferLike>();

/** A free slab, or a new one. */
export function takeSlab(): Buffer {
  const b = free.pop();
  if (b) return b;
  const slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  ours.add(slab.buffer);
  return slab;
}

/** Give back the slab under `chunk` (any view of it); a chunk not made of a slab is ignored. */
export function giveBack(chunk: Buffer): void {
  if (!ours.has(chunk.buffer) || free.length >= KEEP) return;
  free.push(Buffer.from(chunk.buffer, 0, SLAB_BYTES));
}

/** Slabs waiting to be read into again (for tests). */
export function freeSlabs(): number {
  return free.length;
}

/**
 * The `onread` option of net.connect() that reads into slabs and passes each chunk to `onChunk`
 * (the socket then emits no `data` of its own). A chunk of COPY_BELOW bytes or more is a view
 * of its slab, which the receiver now owns; a shorter one is a copy.
 */
export function slabReader(onChunk: (chunk: Buffer) => void): {
  buffer: () => Buffer;
  callback: (n: number, buf: Buffer) => boolean;
} {
  let spare: Buffer | undefined;
  return {
    buffer: () => (spare ??= takeSlab()),
    callback: (n, buf) => {
      if (n >= COPY_BELOW) {
        spare = undefined;
        onChunk(buf.subarray(0, n));
      } else onChunk(Buffer.from(buf.subarray(0, n)));
      return true;
    },
  };
}
