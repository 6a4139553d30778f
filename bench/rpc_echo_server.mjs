// The stack's own floor for bench/rpc.ts: a bare zeromq.js ROUTER echo (no signing, no
// MessagePack, no registry), with the sidecar's socket options. Usage: node rpc_echo_server.mjs
// ENDPOINT. Prints "ready" once bound; echoes every message unchanged until killed.
import { Router } from "zeromq";

process.on("SIGTERM", () => process.exit(0));
const sock = new Router({ linger: 0, sendTimeout: 0, sendHighWaterMark: 100_000, receiveHighWaterMark: 100_000 });
await sock.bind(process.argv[2]);
process.stdout.write("ready\n");
for await (const frames of sock) sock.send(frames);
