/** The page's JSON API: state, live lists, stopping jobs, and the review of an executors file. */
import { SidecarError } from "../errors.js";
import type { EventBus } from "../events.js";
import { VERSION } from "../version.js";
import type { ExecutorsSupport } from "./executors-support.js";
import { readJsonBody, sendJson } from "./http-util.js";
import type { LiveState } from "./live.js";
import type { ReviewSession } from "./review.js";
import type { Handler, WebServer } from "./server.js";
import type { Prompt } from "../ssh/prompts/types.js";
import { openEventStream } from "./sse.js";

/** What the page uses of the prompt broker (src/ssh/prompts/broker.ts). */
export interface PagePrompts {
  list(): Prompt[];
  answer(id: string, answers: unknown, by: string): void;
}

export interface RouteDeps {
  events: EventBus;
  live: LiveState;
  support: ExecutorsSupport;
  reviews: Map<string, ReviewSession>;
  server: () => WebServer;
  /** questions of SSH servers, answered in a dialog (absent: no SSH service) */
  prompts?: PagePrompts;
}

function review(deps: RouteDeps, id: string | undefined): ReviewSession {
  const s = id === undefined ? undefined : deps.reviews.get(id);
  if (!s)
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `No review with id \`${id ?? ""}\`; open the link printed by the command again`,
    );
  return s;
}

function docOf(body: Record<string, unknown>): Record<string, unknown> {
  const doc = body.doc;
  if (doc === null || typeof doc !== "object" || Array.isArray(doc))
    throw new SidecarError("INVALID_PARAMS", "Expected `doc` to be the executors object");
  return doc as Record<string, unknown>;
}

export function routes(deps: RouteDeps): Record<string, Handler> {
  const r: Record<string, Handler> = {
    "GET /api/state": (_req, res) =>
      sendJson(res, 200, {
        version: VERSION,
        pid: process.pid,
        reviews: [...deps.reviews.values()].map((s) => ({
          id: s.id,
          file: s.file,
          state: s.state,
        })),
      }),
    "GET /api/events": (_req, res) => {
      deps.server().track(res);
      openEventStream(res, deps.events, deps.live);
    },
    "GET /api/live": async (_req, res) => {
      const [jobs, tunnels, connections] = await Promise.all([
        deps.live.jobs().catch(errorList),
        deps.live.tunnels().catch(errorList),
        deps.live.connections().catch(errorList),
      ]);
      sendJson(res, 200, {
        jobs,
        tunnels,
        connections,
        transfers: [...deps.live.transfers.values()],
        samples: deps.live.samples,
        logs: deps.events.history(["log"]).slice(-200),
        events: deps.events.history(["ssh", "env", "tunnel"]).slice(-100),
      });
    },
    "GET /api/prompts": (_req, res) =>
      sendJson(res, 200, {
        available: deps.prompts !== undefined,
        prompts: deps.prompts?.list() ?? [],
      }),
    "POST /api/prompts": async (req, res, _url, [id, action]) => {
      if (!deps.prompts || id === undefined || action !== "answer")
        throw new SidecarError("INVALID_ARGUMENT", "Expected POST /api/prompts/ID/answer");
      // the answer is checked by shape only and never echoed (a one-time code, a password)
      deps.prompts.answer(id, (await readJsonBody(req)).answers, "page");
      sendJson(res, 200, { ok: true });
    },
    "GET /api/jobs": async (_req, res) => sendJson(res, 200, await deps.live.jobs()),
    "GET /api/connections": async (_req, res) => sendJson(res, 200, await deps.live.connections()),
    "POST /api/jobs": async (_req, res, _url, parts) => {
      if (parts.length !== 2 || parts[1] !== "stop")
        throw new SidecarError("INVALID_ARGUMENT", "Expected POST /api/jobs/ID/stop");
      sendJson(res, 200, { result: (await deps.live.killJob(parts[0]!)) ?? null });
    },
    "POST /api/validate": async (req, res) =>
      sendJson(res, 200, deps.support.check(docOf(await readJsonBody(req)))),
    "GET /api/reviews": (_req, res, _url, [id]) => sendJson(res, 200, review(deps, id).snapshot()),
    "POST /api/reviews": async (req, res, _url, [id, action]) => {
      const s = review(deps, id);
      const body = await readJsonBody(req);
      switch (action) {
        case "accept":
          return sendJson(res, 200, {
            ok: true,
            ...s.accept(docOf(body), String(body.hash ?? "")),
          });
        case "cancel":
          s.cancel();
          return sendJson(res, 200, { ok: true });
        case "reload":
          s.reload();
          return sendJson(res, 200, s.snapshot());
        case "complete": {
          const doc = docOf(body);
          return sendJson(res, 200, {
            labels: await deps.support.complete(doc),
            pools: deps.support.pools(doc),
          });
        }
        case "preflight":
          return sendJson(res, 200, { labels: await deps.support.preflight(docOf(body), s.file) });
        default:
          throw new SidecarError(
            "INVALID_ARGUMENT",
            `Unknown review action \`${action ?? ""}\`; expected accept, cancel, reload, complete or preflight`,
          );
      }
    },
  };
  return r;
}

function errorList(err: unknown): {
  available: true;
  error: string;
  jobs: [];
  tunnels: [];
  connections: [];
} {
  return {
    available: true,
    error: err instanceof Error ? err.message : String(err),
    jobs: [],
    tunnels: [],
    connections: [],
  };
}
