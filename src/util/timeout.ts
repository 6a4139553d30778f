/**
 * Waiting with a bound, in one place: `within` (a value or a fallback once the time is up),
 * `withTimeout` (a value or an error) and `sleep`. Their timers never keep the process alive.
 */

/** `p`'s value, or `fallback` if it takes longer than `ms` (p goes on, unobserved). */
export async function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
    timer.unref();
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** `p`'s value, or a rejection with `onTimeout()` if it takes longer than `ms`. */
export async function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  onTimeout: () => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref();
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Resolves after `ms`; the timer does not keep the process alive, unless `ref`: a CLI command
 * that polls (a pid, a file) has nothing else to keep it running while it waits.
 */
export function sleep(ms: number, opts: { ref?: boolean } = {}): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (!opts.ref) timer.unref();
  });
}
