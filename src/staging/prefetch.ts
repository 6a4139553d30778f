/**
 * Reads many small files ahead, concurrently, into memory while keeping their order, so a
 * sequential consumer (a tar stream) never waits on one file's latency. Large files are opened
 * as streams when their turn comes.
 */
import type { Readable } from "node:stream";

export interface PrefetchItem<T> {
  item: T;
  /** the whole file when it was small enough, else a stream */
  data: Buffer | Readable;
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

/**
 * Yields `items` in order. `open(item)` is called up to `concurrency` items ahead for items whose
 * `sizeOf` is at most `smallMax`, within `budget` bytes held at once.
 */
export async function* prefetch<T>(
  items: T[],
  sizeOf: (item: T) => number,
  open: (item: T) => Promise<Readable>,
  opts: { concurrency?: number; smallMax?: number; budget?: number } = {},
): AsyncGenerator<PrefetchItem<T>> {
  const concurrency = opts.concurrency ?? 16;
  const smallMax = opts.smallMax ?? 1024 * 1024;
  const budget = opts.budget ?? 64 * 1024 * 1024;
  const ahead = new Map<number, Promise<Buffer>>();
  let held = 0;
  let next = 0;
  const fill = (from: number): void => {
    while (next < items.length && ahead.size < concurrency) {
      const it = items[next]!;
      const size = sizeOf(it);
      if (size > smallMax) {
        // a large file stops read-ahead until it is reached
        if (next > from) return;
        return;
      }
      if (held + size > budget && ahead.size > 0) return;
      held += size;
      const p = open(it).then(collect);
      p.catch(() => undefined);
      ahead.set(next, p);
      next++;
    }
  };
  try {
    for (let i = 0; i < items.length; i++) {
      fill(i);
      const it = items[i]!;
      const pending = ahead.get(i);
      if (pending) {
        const buf = await pending;
        ahead.delete(i);
        held -= sizeOf(it);
        fill(i + 1);
        yield { item: it, data: buf };
      } else {
        next = Math.max(next, i + 1);
        yield { item: it, data: await open(it) };
      }
    }
  } finally {
    for (const p of ahead.values()) p.catch(() => undefined);
  }
}
