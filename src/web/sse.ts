/**
 * The page's live feed as Server-Sent Events: first a `hello` with recent history and the rate
 * samples, then every sidecar event of the watched topics (`bus`) and each rate sample (`sample`).
 */
import type { ServerResponse } from "node:http";
import type { EventBus } from "../events.js";
import { SECURITY_HEADERS } from "./http-util.js";
import type { LiveState } from "./live.js";

/** The topics the page shows. */
export const LIVE_TOPICS = ["job", "tunnel", "transfer", "ssh", "env", "log", "web"];

/** Drop a client that stops reading rather than buffer without bound. */
const MAX_BUFFERED = 4 * 1024 * 1024;

export function openEventStream(res: ServerResponse, events: EventBus, live: LiveState): void {
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    "Content-Type": "text/event-stream; charset=utf-8",
    Connection: "keep-alive",
  });
  const send = (name: string, data: unknown): void => {
    if (res.writableLength > MAX_BUFFERED) {
      res.destroy();
      return;
    }
    res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  res.write("retry: 2000\n\n");
  send("hello", {
    history: events.history(LIVE_TOPICS),
    samples: live.samples,
    transfers: [...live.transfers.values()],
  });
  const offBus = events.on(LIVE_TOPICS, (e) => send("bus", e));
  const offSample = live.onSample((sample, tunnels) => send("sample", { sample, tunnels }));
  const ping = setInterval(() => res.write(": ping\n\n"), 15_000);
  ping.unref();
  res.on("close", () => {
    clearInterval(ping);
    offBus();
    offSample();
  });
}
