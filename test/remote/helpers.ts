// Shared by the direct tests of the programs sent to pools (src/remote/), which run each file
// with sh or python3 on this machine, without sshd or a sidecar.
import { fileURLToPath } from "node:url";

/** The folder of the programs (src/remote/). */
export const REMOTE = fileURLToPath(new URL("../../src/remote/", import.meta.url));

/** Poll `probe` until it returns something other than undefined; fail naming `what`. */
export async function waitUntil<T>(
  probe: () => T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
