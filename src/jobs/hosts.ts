/**
 * The hosts used where no sidecar is running (`jobs` and `kill` acting from a record, `run
 * --connection`): SshConnections, which also serves `local`. Imported lazily, so that commands that
 * never reach a pool do not load ssh2.
 */
import type { Hosts } from "../ssh/host.js";
import type { PromptBroker } from "../ssh/prompts/broker.js";

export interface OwnedHosts {
  hosts: Hosts;
  /** where their servers' questions go (the CLI's terminal attends it) */
  prompts: PromptBroker;
  close(): Promise<void>;
}

export async function openHosts(): Promise<OwnedHosts> {
  const { SshConnections } = await import("../ssh/connections.js");
  const connections = new SshConnections();
  return { hosts: connections, prompts: connections.prompts, close: () => connections.close() };
}
