/** The sidecar's connection to the service a reverse tunnel reaches (the interchange, for Parsl). */
import { connect, type NetConnectOpts, type Socket } from "node:net";
import { slabReader } from "./slabs.js";

/**
 * Connect to host:port for one connection through a tunnel. `slabs`: read into slabs (slabs.ts)
 * for a durable stream, which gives them back once the relay has the bytes; the chunks arrive as
 * the socket's `data`, as they would without. Its write buffer is larger than the 16 KiB default:
 * fewer pause/resume cycles of the channel feeding it.
 */
export function connectService(host: string, port: number, slabs: boolean): Socket {
  const sock: Socket = connect({
    host,
    port,
    writableHighWaterMark: 1 << 20,
    ...(slabs ? { onread: slabReader((chunk) => sock.emit("data", chunk)) } : {}),
  } as NetConnectOpts);
  sock.setNoDelay(true);
  return sock;
}
