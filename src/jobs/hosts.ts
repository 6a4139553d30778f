/**
 * The host pool used where no sidecar is running (`jobs` and `kill` acting from a record):
 * `local`, and the SSH pool for every other target.
 */
import type { HostPool } from "../ssh/host.js";
import { LocalOnlyPool } from "./local-host.js";

export interface OwnedHostPool {
  pool: HostPool;
  close(): Promise<void>;
}

export async function openHostPool(): Promise<OwnedHostPool> {
  return { pool: new LocalOnlyPool(), close: async () => undefined };
}
