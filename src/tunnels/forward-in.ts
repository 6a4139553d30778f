/**
 * Remote port forwarding (sshd listens on the pool, `tcpip-forward`) for reverse tunnels: ask for
 * a port, fall back to any free one, give it back.
 */
import type { Client } from "ssh2";
import { SidecarError } from "../errors.js";
import { within } from "../util/timeout.js";

function forwardIn(client: Client, addr: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    try {
      client.forwardIn(addr, port, (err, bound) => (err ? reject(err) : resolve(bound)));
    } catch (err) {
      reject(err as Error);
    }
  });
}

/** Stop sshd listening on addr:port; resolves once it answered, or after 2 s. */
export function unforwardIn(client: Client, addr: string, port: number): Promise<void> {
  const answered = new Promise<void>((resolve) => {
    try {
      client.unforwardIn(addr, port, () => resolve());
    } catch {
      resolve();
    }
  });
  return within(answered, 2000, undefined);
}

/**
 * Have sshd listen on addr:`want` (0 = any port); when `want` is taken, on any port. Resolves
 * with the port it bound. `target` names the pool in errors.
 */
export async function bindRemote(
  client: Client,
  addr: string,
  want: number,
  target: string,
): Promise<number> {
  try {
    return await forwardIn(client, addr, want);
  } catch (err) {
    if (want === 0)
      throw new SidecarError(
        "TUNNEL_FAILED",
        `\`${target}\` refused to listen on ${addr} (remote port forwarding): ${(err as Error).message}. Is AllowTcpForwarding enabled in its sshd_config?`,
        { cause: err },
      );
    return await forwardIn(client, addr, 0).catch((e: Error) => {
      throw new SidecarError(
        "TUNNEL_FAILED",
        `\`${target}\` refused remote port forwarding: ${e.message}`,
        {
          cause: e,
        },
      );
    });
  }
}

/** Give back port `have` and ask for `want` instead (any port if it is taken). */
export async function rebindRemote(
  client: Client,
  addr: string,
  have: number,
  want: number,
): Promise<number> {
  await unforwardIn(client, addr, have);
  try {
    return await forwardIn(client, addr, want);
  } catch {
    return await forwardIn(client, addr, 0);
  }
}
