/** The CLI's documented exit codes (docs/cli.md). */
import { ERROR_CODE_TABLE, type ErrorCode } from "./error-codes.js";

export const EXIT = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  /** `run`: the review page was cancelled */
  CANCELLED: 4,
  /** `kill`/`jobs`: no such job */
  JOB_NOT_FOUND: 10,
  /** `kill`: the job belongs to another user */
  JOB_NOT_OWNED: 11,
  /** `kill`: the job already ended */
  JOB_FINISHED: 12,
  /** `run`: --timeout fired (as timeout(1) does) */
  TIMEOUT: 124,
  /** `run`: COMMAND could not be started */
  CANNOT_EXECUTE: 126,
  COMMAND_NOT_FOUND: 127,
  /** `run`: COMMAND was killed by signal N: 128 + N */
  SIGNAL_BASE: 128,
} as const;

const EXIT_BY_CODE: ReadonlyMap<string, number> = new Map(
  ERROR_CODE_TABLE.map((row) => [row.code, row.exit]),
);

/** The exit code of a command that failed with `code` (src/error-codes.ts); 1 for any other. */
export function exitCodeFor(code: ErrorCode | string): number {
  return EXIT_BY_CODE.get(code) ?? EXIT.ERROR;
}
