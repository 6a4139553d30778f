/**
 * parsl-sidecar's public library entry: the RPC client for other Node tools, the error class,
 * and the daemon for embedding. Everything else is internal.
 */
export { SidecarClient, resolveConnectionFile, type CallOptions } from "./client/client.js";
export {
  SidecarError,
  ErrorCodes,
  isSidecarError,
  type ErrorCode,
  type ErrorPayload,
} from "./errors.js";
export { Daemon, type DaemonOptions } from "./daemon/daemon.js";
export { PROTOCOL_VERSION } from "./rpc/envelope.js";
export { CONNECTION_ENV, type ConnectionInfo } from "./rpc/connection-file.js";
export type { SidecarEvent } from "./events.js";
export { VERSION } from "./version.js";
