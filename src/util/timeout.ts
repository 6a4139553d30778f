/**
 * Waiting with a bound, in one place: `within` (a value or a fallback once the time is up),
 * `withTimeout` (a value or an error) and `sleep`. Like setTimeout, their timers keep the process
 * alive while they wait, so a CLI command that polls is not cut short; `{ unref: true }` is for
 * waits that must never hold up an exit (a daemon's shutdown, a background look).
 */

export interface TimerOptions {
  /** do not keep the process alive for this timer @default false */
  unref?: boolean;
}

function timer(fn: () => void, ms: number, opts: TimerOptions): NodeJS.Timeout {
  const t = setTimeout(fn, ms);
  if (opts.unref) t.unref();
  return t;
}

/** `p`'s value, or `fallback` if it takes longer than `ms` (p goes on, unobserved). */
export async function within<T>(
  p: Promise<T>,
  ms: number,
  fallback: T,
  opts: TimerOptions = {},
): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    t = timer(() => resolve(fallback), ms, opts);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(t);
  }
}

/** `p`'s value, or a rejection with `onTimeout()` if it takes longer than `ms`. */
export async function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  onTimeout: () => Error,
  opts: TimerOptions = {},
): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    t = timer(() => reject(onTimeout()), ms, opts);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(t);
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number, opts: TimerOptions = {}): Promise<void> {
  return new Promise((resolve) => {
    timer(resolve, ms, opts);
  });
}
