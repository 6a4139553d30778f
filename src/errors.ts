/**
 * The one error class of parsl-sidecar. Every failure that crosses a boundary (the RPC, the
 * CLI, a log line) is a SidecarError with a stable string `code`; the Python client raises a
 * matching exception class carrying the same `.code`.
 */

/** Stable error codes. Modules add theirs here so that the full list is in one place. */
export const ErrorCodes = [
  // protocol and daemon
  "INVALID_PARAMS",
  "UNKNOWN_METHOD",
  "VERSION_MISMATCH",
  "TIMEOUT",
  "INTERNAL",
  "UNREACHABLE",
  "SHUTTING_DOWN",
  "ALREADY_RUNNING",
  "BAD_CONNECTION_FILE",
  "INVALID_ARGUMENT",
  // ssh and tunnels
  "SSH_CONFIG",
  "SSH_CONNECT",
  "SSH_AUTH",
  "SSH_HOST_KEY",
  "SSH_EXEC",
  "TUNNEL_FAILED",
  "TUNNEL_NOT_FOUND",
  // executors and remote parsl
  "EXECUTORS_INVALID",
  "POOL_UNREACHABLE",
  "VERSION_SKEW",
  "RESOLVER_FAILED",
  "PROVIDER_FAILED",
  // staging
  "STAGING_FAILED",
  "STAGING_INVALID",
  "STAGING_NOT_FOUND",
  "STAGING_PERMISSION",
  "STAGING_NO_SPACE",
  "STAGING_CREDENTIALS",
  "STAGING_UNSAFE_PATH",
  "STAGING_INTEGRITY",
  // environments
  "ENV_INVALID",
  "ENV_FAILED",
  "ENV_NOT_FOUND",
  "ENV_LOCKED",
  // jobs
  "JOB_NOT_FOUND",
  "JOB_NOT_OWNED",
  "JOB_FINISHED",
  "COMMAND_NOT_FOUND",
  // web
  "WEB_CONFLICT",
  "REVIEW_CANCELLED",
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];

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
