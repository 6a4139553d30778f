/** The CLI's documented exit codes (docs/cli.md). */
import type { ErrorCode } from "./errors.js";

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

export function exitCodeFor(code: ErrorCode | string): number {
  switch (code) {
    case "UNREACHABLE":
    case "BAD_CONNECTION_FILE":
      return EXIT.UNREACHABLE;
    case "INVALID_ARGUMENT":
      return EXIT.USAGE;
    case "COMMAND_NOT_FOUND":
      return EXIT.COMMAND_NOT_FOUND;
    case "JOB_NOT_FOUND":
      return EXIT.JOB_NOT_FOUND;
    case "JOB_NOT_OWNED":
      return EXIT.JOB_NOT_OWNED;
    case "JOB_FINISHED":
      return EXIT.JOB_FINISHED;
    case "REVIEW_CANCELLED":
      return EXIT.CANCELLED;
    default:
      return EXIT.ERROR;
  }
}
