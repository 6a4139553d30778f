/**
 * Reads many small files ahead, concurrently, into memory, and hands them out in the order they
 * arrive (a tar stream does not care about order, and one slow object must not hold up the
 * others); large files follow, one stream at a time.
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

export interface PrefetchOptions {
  /** loads in flight plus loaded and not yet taken @default 16 */
  concurrency?: number;
  /** files up to this size are read whole @default 1 MiB */
  smallMax?: number;
}

/** Yields every item once: small ones as Buffers in completion order, then large ones as streams. */
export async function* prefetch<T>(
  items: T[],
  sizeOf: (item: T) => number,
  open: (item: T) => Promise<Readable>,
  opts: PrefetchOptions = {},
): AsyncGenerator<PrefetchItem<T>> {
  const concurrency = opts.concurrency ?? 16;
  const smallMax = opts.smallMax ?? 1024 * 1024;
  const small = items.filter((it) => sizeOf(it) <= smallMax);
  const large = items.filter((it) => sizeOf(it) > smallMax);
  const ready: Array<{ item: T; data: Buffer } | { error: unknown }> = [];
  let wake: (() => void) | undefined;
  let next = 0;
  let inflight = 0;
  const load = (it: T): void => {
    inflight++;
    open(it)
      .then(collect)
      .then(
        (data) => ready.push({ item: it, data }),
        (error: unknown) => ready.push({ error }),
      )
      .finally(() => {
        inflight--;
        wake?.();
      });
  };
  const fill = (): void => {
    while (next < small.length && inflight + ready.length < concurrency) load(small[next++]!);
  };
  try {
    for (let taken = 0; taken < small.length; taken++) {
      fill();
      while (ready.length === 0) await new Promise<void>((r) => (wake = r));
      wake = undefined;
      const got = ready.shift()!;
      if ("error" in got) throw got.error;
      yield { item: got.item, data: got.data };
    }
    for (const it of large) yield { item: it, data: await open(it) };
  } finally {
    // loads still running settle on their own; nothing waits for them
    next = small.length;
  }
}
