/** Which endpoints the sidecar may bind: ipc:// by default, loopback tcp://, remote only when asked. */
import { join } from "node:path";
import { SidecarError } from "../errors.js";

export function defaultEndpoint(runtimeDir: string): string {
  return `ipc://${join(runtimeDir, "sidecar.sock")}`;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]|::1)$/;

/** Throws INVALID_ARGUMENT for a malformed endpoint or a non-loopback one without allowRemote. */
export function checkEndpoint(endpoint: string, allowRemote: boolean): { remote: boolean } {
  if (endpoint.startsWith("ipc://")) {
    if (endpoint.length - 6 > 100)
      throw new SidecarError(
        "INVALID_ARGUMENT",
        `Expected \`--endpoint\` to be an ipc:// path of at most 100 characters (a Unix socket limit), got ${endpoint.length - 6}`,
      );
    return { remote: false };
  }
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+|\*)$/.exec(endpoint);
  if (!m)
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected \`--endpoint\` to be ipc://PATH or tcp://HOST:PORT, got \`${endpoint}\``,
    );
  const port = m[2] === "*" ? 0 : Number(m[2]);
  if (port < 0 || port > 65535)
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected the port of \`--endpoint\` to be 0-65535, got ${m[2]}`,
    );
  const host = m[1]!;
  if (LOOPBACK.test(host)) return { remote: false };
  if (!allowRemote) {
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Refusing to listen on non-loopback address ${host}: anyone who can reach it could try the RPC. Pass --allow-remote if you mean it (requests are still signed).`,
    );
  }
  return { remote: true };
}
