/**
 * Remote port forwarding over ssh2 (sshd listens on the pool, `tcpip-forward`): SshLink.listen.
 * ssh2 reports every forwarded connection as one `tcp connection` event per Client; a table per
 * Client routes each to the listener that bound its address and port.
 */
import type { Duplex } from "node:stream";
import type { Client, ClientChannel, TcpConnectionDetails } from "ssh2";
import { within } from "../../util/timeout.js";
import type { RemoteListener } from "../link.js";

type ForwardHandler = (
  info: TcpConnectionDetails,
  accept: () => ClientChannel,
  reject: () => void,
) => void;

const tables = new WeakMap<Client, Map<string, ForwardHandler>>();

/** Route connections for `bindAddr:port` on `client` to `handler`; returns the unregister function. */
function routeForwarded(
  client: Client,
  bindAddr: string,
  port: number,
  handler: ForwardHandler,
): () => void {
  let table = tables.get(client);
  if (!table) {
    const t = new Map<string, ForwardHandler>();
    table = t;
    tables.set(client, t);
    client.on(
      "tcp connection",
      (info: TcpConnectionDetails, accept: () => ClientChannel, reject: () => void) => {
        const h = t.get(`${info.destIP}:${info.destPort}`);
        if (h) h(info, accept, reject);
        else reject();
      },
    );
  }
  const key = `${bindAddr}:${port}`;
  table.set(key, handler);
  return () => {
    if (table.get(key) === handler) table.delete(key);
  };
}

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
function unforwardIn(client: Client, addr: string, port: number): Promise<void> {
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
 * Have sshd listen on `addr:port` (0: any port) and hand each connection to `accept`. Rejects with
 * ssh2's error when the server refuses.
 */
export async function listenRemote(
  client: Client,
  addr: string,
  port: number,
  accept: (conn: Duplex) => void,
): Promise<RemoteListener> {
  const bound = await forwardIn(client, addr, port);
  const unroute = routeForwarded(client, addr, bound, (_info, take) => accept(take()));
  let closed: Promise<void> | undefined;
  return {
    port: bound,
    close: () => {
      closed ??= (async () => {
        unroute();
        await unforwardIn(client, addr, bound);
      })();
      return closed;
    },
  };
}
