/** Retry with exponential backoff and jitter, for transient failures only. */
import { sleep } from "../util/timeout.js";
import { isTransient } from "./failures.js";

export interface RetryOptions {
  /** total attempts @default 4 */
  attempts?: number;
  /** first delay @default 250 */
  baseMs?: number;
  /** longest delay @default 5000 */
  maxMs?: number;
  signal?: AbortSignal | undefined;
  retryable?: (err: unknown) => boolean;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  opts: RetryOptions = {},
): Promise<T> {
  const attempts = opts.attempts ?? 4;
  const retryable = opts.retryable ?? isTransient;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts || !retryable(err) || opts.signal?.aborted) throw err;
      const delay =
        Math.min(opts.maxMs ?? 5000, (opts.baseMs ?? 250) * 2 ** (attempt - 1)) *
        (0.5 + Math.random() / 2);
      opts.onRetry?.(err, attempt, delay);
      await sleep(delay);
    }
  }
}

/** Run tasks with at most `limit` at once; the first failure stops new tasks and is thrown. */
export async function forEachLimit<T>(
  items: Iterable<T> | AsyncIterable<T>,
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const running = new Set<Promise<void>>();
  let failed: { err: unknown } | undefined;
  try {
    for await (const item of items) {
      if (failed) break;
      const p: Promise<void> = fn(item).then(
        () => {
          running.delete(p);
        },
        (err: unknown) => {
          running.delete(p);
          failed ??= { err };
        },
      );
      running.add(p);
      if (running.size >= limit) await Promise.race(running);
    }
  } catch (err) {
    failed ??= { err };
  }
  // never leave tasks running behind the caller's back, even when the source fails
  await Promise.all(running);
  if (failed) throw failed.err;
}
