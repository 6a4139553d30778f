/**
 * The one error class of parsl-sidecar. Every failure that crosses a boundary (the RPC, the
 * CLI, a log line) is a SidecarError with a stable string `code`; the Python client raises a
 * matching exception class carrying the same `.code`.
 */

import { ERROR_CODE_TABLE, type ErrorCode } from "./error-codes.js";

export type { ErrorCode };

/** Stable error codes, in the order of the table in src/error-codes.ts (where they are added). */
export const ErrorCodes: readonly ErrorCode[] = ERROR_CODE_TABLE.map((row) => row.code);

/** What crosses the RPC in an error reply. */
export interface ErrorPayload {
  code: string;
  message: string;
  data?: Record<string, unknown>;
}

export class SidecarError extends Error {
  override readonly name = "SidecarError";
  readonly code: ErrorCode;
  readonly data: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; data?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.data = options.data;
  }

  toPayload(): ErrorPayload {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }

  /** Rebuild an error received in a reply; unknown codes are kept as they are. */
  static fromPayload(payload: ErrorPayload): SidecarError {
    const err = new SidecarError(
      payload.code as ErrorCode,
      payload.message,
      payload.data === undefined ? {} : { data: payload.data },
    );
    return err;
  }
}

export function isSidecarError(err: unknown, code?: ErrorCode): err is SidecarError {
  return err instanceof SidecarError && (code === undefined || err.code === code);
}

/** Wrap anything thrown into a SidecarError, keeping known ones as they are. */
export function toSidecarError(err: unknown, fallback: ErrorCode = "INTERNAL"): SidecarError {
  if (err instanceof SidecarError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SidecarError(fallback, message, { cause: err });
}
