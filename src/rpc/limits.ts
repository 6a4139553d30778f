/**
 * The RPC socket's limits on what a peer can make the sidecar hold before its message's signature
 * is checked (docs/protocol.md, "Limits"), read from the environment so that `serve --detach`
 * passes them on.
 */
import { SidecarError } from "../errors.js";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_PENDING_BYTES,
  DEFAULT_MAX_UNSIGNED_PEERS,
  type RouterLimit,
} from "./zmtp/router.js";

export interface RpcLimits {
  /** @default 16 MiB ($PARSL_SIDECAR_RPC_MAX_MESSAGE) */
  maxMessageBytes: number;
  /** @default 32 MiB ($PARSL_SIDECAR_RPC_MAX_PENDING) */
  maxPendingBytes: number;
  /** @default 64 ($PARSL_SIDECAR_RPC_MAX_UNSIGNED) */
  maxUnsignedPeers: number;
}

/** The environment variable that sets each limit, by the name it is counted under. */
export const LIMIT_ENV: Record<RouterLimit, string> = {
  message_bytes: "PARSL_SIDECAR_RPC_MAX_MESSAGE",
  pending_bytes: "PARSL_SIDECAR_RPC_MAX_PENDING",
  unsigned_peers: "PARSL_SIDECAR_RPC_MAX_UNSIGNED",
};

export const DEFAULT_LIMITS: RpcLimits = {
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  maxPendingBytes: DEFAULT_MAX_PENDING_BYTES,
  maxUnsignedPeers: DEFAULT_MAX_UNSIGNED_PEERS,
};

const UNIT: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
/** Below this a message could not carry a signed ping, so a smaller limit is a typo. */
const MIN_MESSAGE_BYTES = 1024;

/**
 * A size in bytes: `16777216`, `16MiB`, `16M`, `512KiB` (units are powers of 1024).
 * @example parseBytes("16MiB", "PARSL_SIDECAR_RPC_MAX_MESSAGE") // 16777216
 */
export function parseBytes(text: string, what: string): number {
  const m = /^\s*(\d+)\s*(?:([kmg])(?:i?b)?|b?)\s*$/i.exec(text);
  const n = m ? Number(m[1]) * UNIT[(m[2] ?? "").toLowerCase()]! : Number.NaN;
  if (!Number.isSafeInteger(n) || n < MIN_MESSAGE_BYTES)
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected \`${what}\` to be a size of at least ${MIN_MESSAGE_BYTES} bytes such as 16777216, 16MiB or 512KiB; got \`${text}\``,
    );
  return n;
}

function parseCount(text: string, what: string): number {
  const n = /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1)
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected \`${what}\` to be a whole number of connections, 1 or more, such as 64; got \`${text}\``,
    );
  return n;
}

/** The limits from the environment, each one unset or empty taking its default; a bad value is named. */
export function rpcLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): RpcLimits {
  const get = (limit: RouterLimit): string | undefined => {
    const v = env[LIMIT_ENV[limit]];
    return v === undefined || v === "" ? undefined : v;
  };
  const message = get("message_bytes");
  const pending = get("pending_bytes");
  const unsigned = get("unsigned_peers");
  const limits = {
    maxMessageBytes: message
      ? parseBytes(message, `$${LIMIT_ENV.message_bytes}`)
      : DEFAULT_LIMITS.maxMessageBytes,
    maxPendingBytes: pending
      ? parseBytes(pending, `$${LIMIT_ENV.pending_bytes}`)
      : DEFAULT_LIMITS.maxPendingBytes,
    maxUnsignedPeers: unsigned
      ? parseCount(unsigned, `$${LIMIT_ENV.unsigned_peers}`)
      : DEFAULT_LIMITS.maxUnsignedPeers,
  };
  // a message of the largest size must fit in the budget, or no client could send one
  if (limits.maxPendingBytes < limits.maxMessageBytes)
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected \`$${LIMIT_ENV.pending_bytes}\` (${limits.maxPendingBytes} bytes) to be at least the message limit \`$${LIMIT_ENV.message_bytes}\` (${limits.maxMessageBytes} bytes)`,
    );
  return limits;
}

/**
 * The limits a client needs before it sends, as the connection file and `sidecar.describe`
 * publish them (docs/protocol.md, "Limits").
 */
export interface PublishedLimits {
  /** the largest message the sidecar takes, all frames after the routing id */
  message_bytes: number;
  /** bytes of unfinished messages across all connections */
  pending_bytes: number;
}

export function publishedLimits(limits: RpcLimits): PublishedLimits {
  return { message_bytes: limits.maxMessageBytes, pending_bytes: limits.maxPendingBytes };
}

/** A connection file's limits, each one it lacks (a file of an older sidecar) at its default. */
export function limitsOf(info: { limits?: Partial<PublishedLimits> | undefined }): PublishedLimits {
  return {
    message_bytes: info.limits?.message_bytes ?? DEFAULT_LIMITS.maxMessageBytes,
    pending_bytes: info.limits?.pending_bytes ?? DEFAULT_LIMITS.maxPendingBytes,
  };
}

/** The least power of two of at least `n` bytes (and 1 KiB), for a limit with room to spare. */
function roomFor(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(n, 1024)));
}

/** A power of two of at least 1 KiB as a value of the limit variables: `128KiB`, `32MiB`. */
function sizeSetting(n: number): string {
  return n < 1024 ** 2 ? `${n / 1024}KiB` : `${n / 1024 ** 2}MiB`;
}

/**
 * The error for a request too large to send: a sidecar would close the connection on it, and
 * the client would wait for a reply that never comes. Names the method, the sizes and both ways
 * out; the Python client words it the same (python/parsl_sidecar/client.py).
 */
export function messageTooLarge(
  method: string,
  size: number,
  limits: PublishedLimits,
): SidecarError {
  const want = roomFor(size);
  // serve refuses a message limit over the pending budget, so raising one may need both
  const pending =
    want > limits.pending_bytes ? ` ${LIMIT_ENV.pending_bytes}=${sizeSetting(2 * want)}` : "";
  return new SidecarError(
    "RPC_MESSAGE_TOO_LARGE",
    `Cannot send ${method}: its request is ${size} bytes signed, over the sidecar's limit of ${limits.message_bytes} bytes per message (message_bytes), past which it closes the connection. Send less per call (split the work into several calls), or start the sidecar with a larger limit: \`${LIMIT_ENV.message_bytes}=${sizeSetting(want)}${pending} parsl-sidecar serve --detach\``,
    {
      data: {
        method,
        size,
        limit: limits.message_bytes,
        variable: LIMIT_ENV.message_bytes,
      },
    },
  );
}
