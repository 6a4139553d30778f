/**
 * The one table of parsl-sidecar's stable error codes: each code's family, meaning and the exit
 * code of the CLI when a command fails with it. Everything else is derived from it: `ErrorCodes`
 * (src/errors.ts) and `exitCodeFor` (src/exit-codes.ts) in TypeScript, and, by `npm run generate`
 * (scripts/generate/error-codes.ts), python/parsl_sidecar/_codes.py and the table in
 * docs/protocol.md. Add a code here, then run `npm run generate`.
 */

/** The families of codes, in the order of the docs. */
const FAMILIES = {
  protocol: { meaning: "the RPC call itself (params, method, protocol version, timeout) and bugs" },
  daemon: { meaning: "finding, starting and stopping the sidecar (connection file, lock)" },
  ssh: { prefix: "SSH_", meaning: "SSH configuration, connections and remote commands" },
  tunnels: {
    prefix: "TUNNEL_",
    meaning: "tunnels between this machine and pools (reverse and local forwards)",
  },
  executors: { meaning: "executors.json, pool resolution and the remote Parsl providers" },
  staging: { prefix: "STAGING_", meaning: "file transfers between stores" },
  env: { prefix: "ENV_", meaning: "Python environments (conda, uv) and images, here and on pools" },
  jobs: { prefix: "JOB_", meaning: "jobs of `parsl-sidecar run` and their commands" },
  web: { meaning: "the review page" },
} as const satisfies Record<string, ErrorFamilyInfo>;

export interface ErrorFamilyInfo {
  /**
   * Every code named with it belongs to the family (`SSH_`), also one that a newer sidecar
   * adds: the Python client maps such an unknown code to the family's class.
   */
  prefix?: string;
  /** One line, for docs/protocol.md. */
  meaning: string;
}

export type ErrorFamily = keyof typeof FAMILIES;

export const ERROR_FAMILIES: Readonly<Record<ErrorFamily, ErrorFamilyInfo>> = FAMILIES;

/** One row of the table. */
export interface ErrorCodeRow {
  code: string;
  family: ErrorFamily;
  /** The CLI's exit code for a command that fails with this code (docs/cli.md). */
  exit: number;
  /** One line, Markdown, for the table in docs/protocol.md. */
  meaning: string;
}

/** Every stable code, in a fixed order (the Python client's `ERROR_CODES` keeps it). */
export const ERROR_CODE_TABLE = [
  {
    code: "INVALID_PARAMS",
    family: "protocol",
    exit: 1,
    meaning:
      "params failed validation; the message names each field, what was expected and the value received",
  },
  {
    code: "UNKNOWN_METHOD",
    family: "protocol",
    exit: 1,
    meaning: "no such method (`sidecar.describe` lists them)",
  },
  {
    code: "VERSION_MISMATCH",
    family: "protocol",
    exit: 1,
    meaning: "the client speaks another protocol version",
  },
  { code: "TIMEOUT", family: "protocol", exit: 1, meaning: "(client side) no reply in time" },
  {
    code: "INTERNAL",
    family: "protocol",
    exit: 1,
    meaning: "a bug; the sidecar's log has the stack",
  },
  {
    code: "UNREACHABLE",
    family: "daemon",
    exit: 3,
    meaning: "(client side) no connection file, or the client was closed",
  },
  {
    code: "SHUTTING_DOWN",
    family: "daemon",
    exit: 1,
    meaning: "the sidecar is shutting down and did not finish this call",
  },
  {
    code: "ALREADY_RUNNING",
    family: "daemon",
    exit: 1,
    meaning: "a sidecar already runs in that runtime directory",
  },
  {
    code: "BAD_CONNECTION_FILE",
    family: "daemon",
    exit: 3,
    meaning:
      "the connection file is not valid or can be read by others, or the runtime directory is not yours",
  },
  {
    code: "INVALID_ARGUMENT",
    family: "protocol",
    exit: 2,
    meaning: "a malformed argument (a target, a name, a port, a CLI flag); the message says which",
  },
  {
    code: "RPC_MESSAGE_TOO_LARGE",
    family: "protocol",
    exit: 1,
    meaning:
      "(client side) a request is larger than the sidecar's `message_bytes` limit (see Limits); it was not sent",
  },
  {
    code: "SSH_CONFIG",
    family: "ssh",
    exit: 1,
    meaning: "the SSH config cannot be read, or names no usable host",
  },
  {
    code: "SSH_CONNECT",
    family: "ssh",
    exit: 1,
    meaning: "cannot connect to the host, or the connection dropped",
  },
  { code: "SSH_AUTH", family: "ssh", exit: 1, meaning: "no offered credential was accepted" },
  {
    code: "SSH_HOST_KEY",
    family: "ssh",
    exit: 1,
    meaning: "the host key is unknown or differs from known_hosts",
  },
  {
    code: "SSH_EXEC",
    family: "ssh",
    exit: 1,
    meaning: "a remote command could not be started (for example no free session)",
  },
  {
    code: "TUNNEL_FAILED",
    family: "tunnels",
    exit: 1,
    meaning: "a tunnel could not be opened, or its end-to-end check failed",
  },
  { code: "TUNNEL_NOT_FOUND", family: "tunnels", exit: 1, meaning: "no tunnel with that id" },
  {
    code: "EXECUTORS_INVALID",
    family: "executors",
    exit: 1,
    meaning: "executors.json is not valid; the message names each problem",
  },
  {
    code: "POOL_UNREACHABLE",
    family: "executors",
    exit: 1,
    meaning: "an executor's pool cannot be reached over SSH",
  },
  {
    code: "VERSION_SKEW",
    family: "executors",
    exit: 1,
    meaning: "the pool's Python or Parsl version differs from this machine's",
  },
  {
    code: "PARSL_UNSUPPORTED",
    family: "executors",
    exit: 1,
    meaning: "(client side) this machine's Parsl is older than the oldest release supported",
  },
  {
    code: "RESOLVER_FAILED",
    family: "executors",
    exit: 1,
    meaning: "an executor's RESOLVER could not say where its pool is",
  },
  {
    code: "PROVIDER_FAILED",
    family: "executors",
    exit: 1,
    meaning: "the pool cannot run the executor's PROVIDER (commands, directories, partition)",
  },
  {
    code: "STAGING_FAILED",
    family: "staging",
    exit: 1,
    meaning: "a transfer failed; the message says where",
  },
  {
    code: "STAGING_INVALID",
    family: "staging",
    exit: 1,
    meaning: "a transfer cannot be done as asked (wrong type, unsupported location)",
  },
  {
    code: "STAGING_NOT_FOUND",
    family: "staging",
    exit: 1,
    meaning: "the source of a transfer does not exist",
  },
  {
    code: "STAGING_PERMISSION",
    family: "staging",
    exit: 1,
    meaning: "a store refused access",
  },
  {
    code: "STAGING_NO_SPACE",
    family: "staging",
    exit: 1,
    meaning: "the destination is out of space or quota",
  },
  {
    code: "STAGING_CREDENTIALS",
    family: "staging",
    exit: 1,
    meaning: "no usable credentials for a cloud store",
  },
  {
    code: "STAGING_UNSAFE_PATH",
    family: "staging",
    exit: 1,
    meaning: "a path would land outside the destination (`..`, an absolute path, a symlink)",
  },
  {
    code: "STAGING_INTEGRITY",
    family: "staging",
    exit: 1,
    meaning: "a copy does not match its source (size or checksum)",
  },
  {
    code: "ENV_INVALID",
    family: "env",
    exit: 1,
    meaning: "an environment's name, file or settings are not valid",
  },
  {
    code: "ENV_FAILED",
    family: "env",
    exit: 1,
    meaning: "creating or updating an environment failed",
  },
  {
    code: "ENV_NOT_FOUND",
    family: "env",
    exit: 1,
    meaning: "a file, installer or conda the environment needs does not exist",
  },
  {
    code: "ENV_LOCKED",
    family: "env",
    exit: 1,
    meaning: "another ensure of the environment held its lock too long",
  },
  {
    code: "JOB_NOT_FOUND",
    family: "jobs",
    exit: 10,
    meaning: "no record of that job (of this user)",
  },
  {
    code: "JOB_NOT_OWNED",
    family: "jobs",
    exit: 11,
    meaning: "the job's record belongs to another user",
  },
  {
    code: "JOB_FINISHED",
    family: "jobs",
    exit: 12,
    meaning: "the job already ended; `data: {job, state, exit_code}`",
  },
  {
    code: "COMMAND_NOT_FOUND",
    family: "jobs",
    exit: 127,
    meaning: "(CLI) `run`: the command was not found",
  },
  {
    code: "WEB_CONFLICT",
    family: "web",
    exit: 1,
    meaning:
      "a review was already decided (accepted or cancelled, possibly in another window), or its file changed on disk: nothing was written",
  },
  {
    code: "REVIEW_CANCELLED",
    family: "web",
    exit: 4,
    meaning: "(CLI) `run --review`: the review was cancelled on the page",
  },
] as const satisfies readonly ErrorCodeRow[];

export type ErrorCode = (typeof ERROR_CODE_TABLE)[number]["code"];
