/**
 * The host pool used where no sidecar is running (`jobs` and `kill` acting from a record, `run
 * --connection`): the SSH pool, which also serves `local`. Imported lazily, so that commands that
 * never reach a pool do not load ssh2.
 */
import type { HostPool } from "../ssh/host.js";

export interface OwnedHostPool {
  pool: HostPool;
  close(): Promise<void>;
}

export async function openHostPool(): Promise<OwnedHostPool> {
  const { SshPool } = await import("../ssh/pool.js");
  const pool = new SshPool();
  return { pool, close: () => pool.close() };
}
