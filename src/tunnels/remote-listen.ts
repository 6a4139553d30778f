/**
 * Remote port forwarding for reverse tunnels (sshd listens on the pool, through SshLink.listen
 * or listenDirect): ask for a port, fall back to any free one, move to another.
 */
import { SidecarError } from "../errors.js";
import type { RemoteListener } from "../ssh/link.js";

/** asks sshd to listen on `port` (0 = any), however the connections are then carried */
export type ListenOn = (port: number) => Promise<RemoteListener>;

/**
 * Have sshd listen on addr:`want` (0 = any port); when `want` is taken, on any port. Resolves
 * with the listener (its `port` is the one bound). `target` names the pool in errors.
 */
export async function bindRemote(
  listenOn: ListenOn,
  addr: string,
  want: number,
  target: string,
): Promise<RemoteListener> {
  try {
    return await listenOn(want);
  } catch (err) {
    if (want === 0)
      throw new SidecarError(
        "TUNNEL_FAILED",
        `\`${target}\` refused to listen on ${addr} (remote port forwarding): ${(err as Error).message}. Is AllowTcpForwarding enabled in its sshd_config?`,
        { cause: err },
      );
    return await listenOn(0).catch((e: Error) => {
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
  listenOn: ListenOn,
  have: RemoteListener,
  want: number,
): Promise<RemoteListener> {
  await have.close();
  try {
    return await listenOn(want);
  } catch {
    return await listenOn(0);
  }
}
