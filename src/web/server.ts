/**
 * The page's HTTP server (node:http, 127.0.0.1 only): every request passes the token/cookie,
 * Host and Origin checks of WebAuth, then gets the page, an asset, the JSON API or the event
 * stream. No CORS headers are ever sent.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../util/logger.js";
import type { Assets } from "./assets.js";
import { WebAuth } from "./auth.js";
import { SECURITY_HEADERS, sendError, sendJson, sendText } from "./http-util.js";

/** A route handler gets the request, the response and the parts of the path after its prefix. */
export type Handler = (
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  parts: string[],
) => Promise<void> | void;

export interface WebServerOptions {
  assets: Assets;
  log: Logger;
  /** `METHOD /api/prefix` → handler; the longest matching prefix wins */
  routes: Record<string, Handler>;
  port?: number;
}

export class WebServer {
  private readonly streams = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly auth: WebAuth,
    private readonly opts: WebServerOptions,
  ) {}

  static async start(opts: WebServerOptions): Promise<WebServer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    const web = new WebServer(server, port, new WebAuth(port), opts);
    server.on("request", (req, res) => void web.handle(req, res));
    return web;
  }

  /** A link with a fresh one-time token; `query` adds parameters such as `review=ID`. */
  link(query: Record<string, string> = {}): string {
    const params = new URLSearchParams({ ...query, token: this.auth.issueToken() });
    return `http://127.0.0.1:${this.port}/?${params.toString()}`;
  }

  /** Keep a long-lived response (an event stream) to end it when the server closes. */
  track(res: ServerResponse): void {
    this.streams.add(res);
    res.on("close", () => this.streams.delete(res));
  }

  async close(): Promise<void> {
    for (const res of this.streams) res.end();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", `http://127.0.0.1:${this.port}`);
    const verdict = this.auth.check(req, url);
    if (!verdict.ok) {
      this.opts.log.info(
        { method: req.method, path: url.pathname, why: verdict.reason },
        "web request refused",
      );
      if (url.pathname.startsWith("/api/"))
        return sendJson(res, 403, {
          error: { code: "WEB_FORBIDDEN", message: `Forbidden: ${verdict.reason}` },
        });
      return sendText(res, 403, `Forbidden: ${verdict.reason}\n`);
    }
    if (verdict.setCookie) res.setHeader("Set-Cookie", verdict.setCookie);
    try {
      if (req.method === "GET" && url.pathname === "/") return this.asset(res, "index.html");
      if (req.method === "GET" && url.pathname.startsWith("/assets/"))
        return this.asset(res, url.pathname.slice("/assets/".length));
      const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
      for (let n = parts.length; n >= 2; n--) {
        const handler = this.opts.routes[`${req.method} /${parts.slice(0, n).join("/")}`];
        if (handler) return await handler(req, res, url, parts.slice(n));
      }
      sendJson(res, 404, {
        error: { code: "NOT_FOUND", message: `No such page or API: ${req.method} ${url.pathname}` },
      });
    } catch (err) {
      if (res.headersSent) res.destroy();
      else sendError(res, err);
    }
  }

  private asset(res: ServerResponse, name: string): void {
    const file = this.opts.assets.get(name);
    if (!file) return sendText(res, 404, "Not found\n");
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "Content-Type": file.type,
      "Content-Length": file.body.length,
    });
    res.end(file.body);
  }
}
