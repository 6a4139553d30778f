/**
 * The programs the sidecar sends to pools (src/remote/, docs/architecture.md "The remote home"):
 * real `.sh` and `.py` files, linted and tested on their own, carried in the bundle by the
 * generated module and sent on the command line, so a pool needs nothing installed. Values reach
 * a program only as its arguments (or environment), never inside its text.
 */
import { shellQuote } from "../util/shell-quote.js";
import { PROGRAMS } from "./programs.generated.js";

export type ProgramName = keyof typeof PROGRAMS;
export type ShProgram = Extract<ProgramName, `${string}.sh`>;
export type BashProgram = Extract<ProgramName, `${string}.bash`>;
export type PyProgram = Extract<ProgramName, `${string}.py`>;

/**
 * An argument: a string or number is quoted; `{ shell }` is a word given to the shell as it is,
 * for what must expand on the pool (`"$HOME"/x`, see env/host-shell.ts pathWord).
 */
export type ProgramArg = string | number | { shell: string };

/** A program's text, as in its file. */
export function programText(name: ProgramName): string {
  return PROGRAMS[name];
}

/** What ps shows for a program: `parsl-sidecar-watchdog` for jobs/watchdog.sh. */
export function programTitle(name: ProgramName): string {
  const base = name.slice(name.lastIndexOf("/") + 1).replace(/\.(sh|bash|py)$/, "");
  return `parsl-sidecar-${base}`;
}

function words(args: readonly ProgramArg[]): string {
  return args
    .map((a) => (typeof a === "object" ? a.shell : shellQuote(String(a))))
    .map((w) => ` ${w}`)
    .join("");
}

/** `sh -c PROGRAM TITLE ARGS...`: a POSIX sh program with its arguments as $1, $2, ... */
export function shCommand(name: ShProgram, args: readonly ProgramArg[] = []): string {
  return `sh -c ${shellQuote(programText(name))} ${programTitle(name)}${words(args)}`;
}

/** `bash -c PROGRAM TITLE ARGS...`: for the few programs that need bash (its /dev/tcp). */
export function bashCommand(name: BashProgram, args: readonly ProgramArg[] = []): string {
  return `bash -c ${shellQuote(programText(name))} ${programTitle(name)}${words(args)}`;
}

/**
 * `PYTHON [-u] -c PROGRAM ARGS...`: a Python program with its arguments as sys.argv[1:].
 * `python` is a command word (a name found on the pool, or a quoted path).
 */
export function pyCommand(
  python: string,
  name: PyProgram,
  args: readonly ProgramArg[] = [],
  opts: { unbuffered?: boolean } = {},
): string {
  const u = opts.unbuffered ? " -u" : "";
  return `${python}${u} -c ${shellQuote(programText(name))}${words(args)}`;
}
