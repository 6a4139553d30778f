// Bare echoes for bench/rpc.ts, no signing, no MessagePack, no registry. Usage:
//   node rpc_echo_server.mjs zmtp ENDPOINT      the sidecar's own ROUTER (dist/rpc/zmtp/router.js): the stack's floor
//   node rpc_echo_server.mjs zeromqjs ENDPOINT  a zeromq.js (libzmq) ROUTER with the options the sidecar used before
// Prints "ready" once bound; echoes every message unchanged until killed.
import { Router } from "zeromq";
import { ZmtpRouter } from "../dist/rpc/zmtp/router.js";

process.on("SIGTERM", () => process.exit(0));
const [kind, endpoint] = process.argv.slice(2);
if (kind === "zmtp") {
  const router = new ZmtpRouter({ onMessage: (frames) => router.send(frames) });
  await router.bind(endpoint);
  process.stdout.write("ready\n");
} else {
  const sock = new Router({
    linger: 0,
    sendTimeout: 0,
    sendHighWaterMark: 100_000,
    receiveHighWaterMark: 100_000,
  });
  await sock.bind(endpoint);
  process.stdout.write("ready\n");
  for await (const frames of sock) sock.send(frames);
}
