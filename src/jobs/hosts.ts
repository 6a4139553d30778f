/**
 * The hosts used where no sidecar is running (`jobs` and `kill` acting from a record, `run
 * --connection`): SshConnections, which also serves `local`. Imported lazily, so that commands that
 * never reach a pool do not load ssh2.
 */
import type { Hosts } from "../ssh/host.js";

export interface OwnedHosts {
  hosts: Hosts;
  close(): Promise<void>;
}

export async function openHosts(): Promise<OwnedHosts> {
  const { SshConnections } = await import("../ssh/connections.js");
  const connections = new SshConnections();
  return { hosts: connections, close: () => connections.close() };
}
