/**
 * The web service: starts the page's server on first use (web.open, web.review), keeps the
 * reviews of executors files, and answers when one is decided (web.review_wait).
 */
import { z } from "zod";
import type { DaemonContext, ServiceModule } from "../rpc/service.js";
import { SidecarError } from "../errors.js";
import { defineMethod } from "../rpc/registry.js";
import { Assets } from "./assets.js";
import { executorsSupport, type ExecutorsSupport } from "./executors-support.js";
import { LiveState } from "./live.js";
import { ReviewSession } from "./review.js";
import { routes, type PagePrompts } from "./routes.js";
import { WebServer } from "./server.js";

export interface WebOptions {
  /** what the review form uses from the executors service (default: over the RPC) */
  support?: ExecutorsSupport;
  /** fixed port (default: any free one) */
  port?: number;
  /** the SSH service's prompt broker: servers' questions are answered in a dialog */
  prompts?: PagePrompts;
}

export function webModule(ctx: DaemonContext, opts: WebOptions = {}): ServiceModule {
  const support = opts.support ?? executorsSupport(ctx);
  const live = new LiveState(ctx);
  const reviews = new Map<string, ReviewSession>();
  let starting: Promise<WebServer> | undefined;
  let server: WebServer | undefined;

  const ensureServer = (): Promise<WebServer> => {
    starting ??= WebServer.start({
      assets: new Assets(),
      log: ctx.log,
      port: opts.port,
      routes: routes({
        events: ctx.events,
        live,
        support,
        reviews,
        server: () => server!,
        ...(opts.prompts ? { prompts: opts.prompts } : {}),
      }),
    }).then((s) => {
      server = s;
      live.start();
      ctx.log.info({ port: s.port }, "web page serving on 127.0.0.1");
      return s;
    });
    return starting;
  };

  return {
    name: "web",
    methods: [
      defineMethod({
        name: "web.open",
        description:
          "Start the local page if needed and return a link to it with a fresh one-time token.",
        params: z.object({ review: z.string().optional() }).strict(),
        result: z.object({ url: z.string() }),
        handler: async (p) => ({
          url: (await ensureServer()).link(p.review ? { review: p.review } : {}),
        }),
      }),
      defineMethod({
        name: "web.review",
        description:
          "Open a review of an executors file on the page; returns its id and a link. Decide it on the page, wait with web.review_wait.",
        params: z.object({ file: z.string().min(1) }).strict(),
        result: z.object({ id: z.string(), url: z.string(), file: z.string() }),
        handler: async (p) => {
          const s = new ReviewSession(p.file, support, (changed) => {
            ctx.events.emit("web.review", {
              id: changed.id,
              file: changed.file,
              state: changed.state,
            });
            if (changed.state !== "open")
              ctx.log.info(
                { file: changed.file, state: changed.state },
                "executors review decided",
              );
          });
          reviews.set(s.id, s);
          const web = await ensureServer();
          return { id: s.id, file: s.file, url: web.link({ review: s.id }) };
        },
      }),
      defineMethod({
        name: "web.review_wait",
        description: "Wait until the review is accepted or cancelled on the page.",
        params: z.object({ id: z.string() }).strict(),
        result: z.object({ outcome: z.enum(["accepted", "cancelled"]), file: z.string() }),
        handler: async (p, call) => {
          const s = reviews.get(p.id);
          if (!s) throw new SidecarError("INVALID_ARGUMENT", `No review with id \`${p.id}\``);
          return await new Promise((resolve, reject) => {
            const onAbort = (): void =>
              reject(
                new SidecarError(
                  "SHUTTING_DOWN",
                  "The sidecar shut down before the review was decided",
                ),
              );
            call.signal.addEventListener("abort", onAbort, { once: true });
            void s.wait().then((o) => {
              call.signal.removeEventListener("abort", onAbort);
              resolve(o);
            });
          });
        },
      }),
    ],
    status: () => ({
      serving: server !== undefined,
      port: server?.port ?? null,
      reviews: reviews.size,
    }),
    close: async () => {
      live.close();
      await server?.close();
    },
  };
}
