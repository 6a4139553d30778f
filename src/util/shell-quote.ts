/** POSIX single-quoting of words for a shell command line. */

/** POSIX single-quote a string for a shell command line. */
export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_\-./:=@%+,]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
