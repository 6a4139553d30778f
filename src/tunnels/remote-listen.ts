/**
 * Remote port forwarding for reverse tunnels (sshd listens on the pool, through SshLink.listen):
 * ask for a port, fall back to any free one, move to another.
 */
import type { Duplex } from "node:stream";
import { SidecarError } from "../errors.js";
import type { RemoteListener, SshLink } from "../ssh/link.js";

/**
 * Have sshd listen on addr:`want` (0 = any port); when `want` is taken, on any port. Resolves
 * with the listener (its `port` is the one bound). `target` names the pool in errors.
 */
export async function bindRemote(
  link: SshLink,
  addr: string,
  want: number,
  target: string,
  accept: (conn: Duplex) => void,
): Promise<RemoteListener> {
  try {
    return await link.listen(addr, want, accept);
  } catch (err) {
    if (want === 0)
      throw new SidecarError(
        "TUNNEL_FAILED",
        `\`${target}\` refused to listen on ${addr} (remote port forwarding): ${(err as Error).message}. Is AllowTcpForwarding enabled in its sshd_config?`,
        { cause: err },
      );
    return await link.listen(addr, 0, accept).catch((e: Error) => {
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

/** Give back the port `have` listens on and ask for `want` instead (any port if it is taken). */
export async function rebindRemote(
  link: SshLink,
  addr: string,
  have: RemoteListener,
  want: number,
  accept: (conn: Duplex) => void,
): Promise<RemoteListener> {
  await have.close();
  try {
    return await link.listen(addr, want, accept);
  } catch {
    return await link.listen(addr, 0, accept);
  }
}
