/** Maps what stores throw (errno, SDK and remote shell errors) to STAGING_* codes, without secrets. */
import { type ErrorCode, SidecarError } from "../errors.js";

/** Remove credential-looking text and the values of secret environment variables. */
export function scrub(text: string, env: NodeJS.ProcessEnv = process.env): string {
  let out = text;
  for (const name of [
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
  ]) {
    const v = env[name];
    if (v && v.length >= 8) out = out.split(v).join("[redacted]");
  }
  return out
    .replace(/\b(AKIA|ASIA)[A-Z0-9]{12,}\b/g, "[redacted]")
    .replace(
      /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g,
      "[redacted]",
    )
    .replace(
      /(Credential=|Signature=|X-Amz-Signature=|access_token=|Bearer\s+)[^\s,&"]+/gi,
      "$1[redacted]",
    );
}

function errText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

const TEXT_RULES: Array<[RegExp, ErrorCode]> = [
  [
    /No space left on device|Disk quota exceeded|ENOSPC|EDQUOT|EntityTooLarge.*quota/i,
    "STAGING_NO_SPACE",
  ],
  [
    /Permission denied|EACCES|EPERM|Read-only file system|EROFS|Operation not permitted/i,
    "STAGING_PERMISSION",
  ],
  [
    /No such file or directory|ENOENT|NoSuchKey|NoSuchBucket|Not ?Found|does not exist/i,
    "STAGING_NOT_FOUND",
  ],
];

/** The STAGING_* code for a failure, from its errno, HTTP status or text. */
export function classify(err: unknown): ErrorCode {
  if (err instanceof SidecarError) return err.code;
  const e = err as {
    code?: unknown;
    name?: unknown;
    $metadata?: { httpStatusCode?: number };
    status?: unknown;
  };
  const code = typeof e?.code === "string" ? e.code : "";
  const name = typeof e?.name === "string" ? e.name : "";
  const status =
    typeof e?.$metadata?.httpStatusCode === "number"
      ? e.$metadata.httpStatusCode
      : typeof e?.code === "number"
        ? e.code
        : typeof e?.status === "number"
          ? e.status
          : 0;
  if (code === "ENOSPC" || code === "EDQUOT") return "STAGING_NO_SPACE";
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") return "STAGING_PERMISSION";
  if (
    code === "ENOENT" ||
    code === "ENOTDIR" ||
    name === "NoSuchKey" ||
    name === "NoSuchBucket" ||
    name === "NotFound" ||
    status === 404
  )
    return "STAGING_NOT_FOUND";
  if (
    name === "CredentialsProviderError" ||
    name === "InvalidAccessKeyId" ||
    name === "SignatureDoesNotMatch" ||
    name === "ExpiredToken" ||
    name === "InvalidToken" ||
    status === 401
  )
    return "STAGING_CREDENTIALS";
  if (
    /Could not load the default credentials|Could not load credentials|credential/i.test(
      errText(err),
    ) &&
    !/permission/i.test(errText(err))
  )
    return "STAGING_CREDENTIALS";
  if (name === "AccessDenied" || status === 403) return "STAGING_PERMISSION";
  const text = errText(err);
  for (const [re, c] of TEXT_RULES) if (re.test(text)) return c;
  return "STAGING_FAILED";
}

/** Whether a retry may help: network drops, throttling, 5xx, a lost SSH connection. */
export function isTransient(err: unknown): boolean {
  if (err instanceof SidecarError) {
    if (err.code === "SSH_CONNECT" || err.data?.transient === true) return true;
    // a channel refused on a connection that is going away
    return (
      err.code === "SSH_EXEC" &&
      /No response from server|Not connected|Unable to exec|connection|closed/i.test(err.message)
    );
  }
  const e = err as {
    code?: unknown;
    name?: unknown;
    $metadata?: { httpStatusCode?: number };
    $retryable?: unknown;
  };
  const code = typeof e?.code === "string" ? e.code : "";
  if (
    [
      "ECONNRESET",
      "ECONNREFUSED",
      "ETIMEDOUT",
      "EPIPE",
      "EAI_AGAIN",
      "ENOTFOUND",
      "ECONNABORTED",
      "EHOSTUNREACH",
      "ENETUNREACH",
      "UND_ERR_SOCKET",
    ].includes(code)
  )
    return true;
  const name = typeof e?.name === "string" ? e.name : "";
  if (
    [
      "SlowDown",
      "RequestTimeout",
      "InternalError",
      "ServiceUnavailable",
      "ThrottlingException",
      "TimeoutError",
      "RequestTimeTooSkewed",
    ].includes(name)
  )
    return true;
  const status = e?.$metadata?.httpStatusCode ?? (typeof e?.code === "number" ? e.code : 0);
  if (status === 429 || (status >= 500 && status < 600)) return true;
  return e?.$retryable !== undefined && e.$retryable !== null;
}

export interface FailureContext {
  /** the item's name (a key of inputs_dict/outputs_dict), when there is one */
  item?: string | undefined;
  src: string;
  dst: string;
  /** the entry inside a directory, if the failure is about one */
  entry?: string | undefined;
}

/** A SidecarError naming the item, both URLs and the cause (credentials scrubbed). */
export function stagingFailure(err: unknown, ctx: FailureContext): SidecarError {
  const original = classify(err);
  // a lost SSH connection and the like still fail a *staging* call: keep their code as data
  const code: ErrorCode =
    original.startsWith("STAGING_") || original === "SHUTTING_DOWN" ? original : "STAGING_FAILED";
  if (err instanceof SidecarError && err.data?.staged === true) return err;
  const cause = scrub(errText(err)).replace(/\s+/g, " ").trim();
  const what = ctx.item ? `\`${ctx.item}\` ` : "";
  const entry = ctx.entry ? ` (entry \`${ctx.entry}\`)` : "";
  const hint =
    HINTS[code] ??
    (original.startsWith("SSH_") ? " (the SSH connection to the pool failed, after retries)" : "");
  return new SidecarError(
    code,
    `Staging ${what}from ${ctx.src} to ${ctx.dst} failed${entry}: ${cause}${hint}`,
    {
      data: {
        staged: true,
        item: ctx.item,
        src: ctx.src,
        dst: ctx.dst,
        entry: ctx.entry,
        cause: cause.slice(0, 2000),
        ...(original !== code ? { cause_code: original } : {}),
      },
    },
  );
}

const HINTS: Partial<Record<ErrorCode, string>> = {
  STAGING_CREDENTIALS:
    " (check the default credentials: AWS_* / ~/.aws for S3, GOOGLE_APPLICATION_CREDENTIALS / gcloud auth for GCS)",
  STAGING_NO_SPACE: " (free space at the destination; nothing partial was left there)",
};
