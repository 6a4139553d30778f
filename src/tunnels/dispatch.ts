/** Routes ssh2's `tcp connection` events (one per Client) to the reverse tunnel that bound the port. */
import type { Client, ClientChannel, TcpConnectionDetails } from "ssh2";

export type ForwardHandler = (
  info: TcpConnectionDetails,
  accept: () => ClientChannel,
  reject: () => void,
) => void;

const tables = new WeakMap<Client, Map<string, ForwardHandler>>();

/** Route connections for `bindAddr:port` on `client` to `handler`; returns the unregister function. */
export function routeForwarded(
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
