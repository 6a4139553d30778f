// The page's server against a real sidecar: who is refused (no token, used token, foreign Host,
// foreign Origin), the cookie, no CORS, and the event stream.
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cookieFor, openReview, startSidecar, TWO_POOLS, type Sidecar } from "./helpers.js";

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request with full control of the headers (fetch would not let us forge Host). */
function raw(
  url: string,
  opts: {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    untilBody?: (b: string) => boolean;
  } = {},
): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: opts.method ?? "GET", headers: opts.headers ?? {} },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
          if (opts.untilBody?.(body)) {
            res.destroy();
            resolve({ status: res.statusCode!, headers: res.headers, body });
          }
        });
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        res.on("error", () => undefined);
      },
    );
    req.on("error", reject);
    if (opts.body) req.write(opts.body);
    req.end();
  });
}

describe("web server security", { timeout: 30_000 }, () => {
  let s: Sidecar;
  let origin: string;
  let cookie: string;
  let id: string;

  beforeAll(async () => {
    s = await startSidecar();
    const r = await openReview(s, s.write("executors.json", TWO_POOLS));
    origin = r.origin;
    id = r.id;
    cookie = await cookieFor(r.url);
  });
  afterAll(async () => await s?.close());

  it("refuses the page, assets, API and event stream without a token or cookie (403)", async () => {
    for (const path of [
      "/",
      "/assets/app.js",
      "/api/state",
      `/api/reviews/${id}`,
      "/api/live",
      "/api/events",
    ]) {
      const res = await raw(`${origin}${path}`);
      expect(res.status, path).toBe(403);
      expect(res.headers["set-cookie"], path).toBeUndefined();
    }
    const post = await raw(`${origin}/api/validate`, {
      method: "POST",
      headers: { origin, "content-type": "application/json" },
      body: '{"doc":{}}',
    });
    expect(post.status).toBe(403);
    expect(JSON.parse(post.body).error.code).toBe("WEB_FORBIDDEN");
  });

  it("refuses a wrong token, and a token used once", async () => {
    expect((await raw(`${origin}/?token=not-a-token`)).status).toBe(403);
    const { url } = await s.client.call<{ url: string }>("web.open", {});
    const first = await raw(url);
    expect(first.status).toBe(200);
    expect(first.headers["set-cookie"]?.[0]).toMatch(
      /^parsl_sidecar_\d+=[\w-]+; HttpOnly; SameSite=Strict; Path=\/$/,
    );
    const again = await raw(url);
    expect(again.status).toBe(403);
    expect(again.body).toMatch(/already used/);
  });

  it("serves the page and API with the cookie, with no CORS headers", async () => {
    const page = await raw(`${origin}/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.headers["content-security-policy"]).toMatch(/default-src 'none'/);
    const api = await raw(`${origin}/api/state`, {
      headers: { cookie, origin: "http://evil.example" },
    });
    expect(api.status).toBe(200);
    expect(api.headers["access-control-allow-origin"]).toBeUndefined();
    expect(JSON.parse(api.body).reviews[0].id).toBe(id);
  });

  it("refuses a foreign Host header even with a valid cookie (DNS rebinding)", async () => {
    const port = new URL(origin).port;
    for (const host of [`evil.example:${port}`, "127.0.0.1", `127.0.0.1:${Number(port) + 1}`]) {
      const res = await raw(`${origin}/api/state`, { headers: { cookie, host } });
      expect(res.status, host).toBe(403);
    }
    expect(
      (await raw(`${origin}/api/state`, { headers: { cookie, host: `localhost:${port}` } })).status,
    ).toBe(200);
  });

  it("refuses a POST from another origin or without an Origin", async () => {
    const body = JSON.stringify({ doc: JSON.parse(TWO_POOLS) });
    for (const headers of [
      { cookie, "content-type": "application/json" } as Record<string, string>,
      { cookie, origin: "http://evil.example", "content-type": "application/json" },
      { cookie, origin: "null", "content-type": "application/json" },
    ]) {
      expect(
        (await raw(`${origin}/api/reviews/${id}/accept`, { method: "POST", headers, body })).status,
      ).toBe(403);
    }
    const ok = await raw(`${origin}/api/validate`, {
      method: "POST",
      headers: { cookie, origin, "content-type": "application/json" },
      body,
    });
    expect(ok.status).toBe(200);
  });

  it("streams events: a hello with history, then the sidecar's events as they happen", async () => {
    let emitted = false;
    const res = await raw(`${origin}/api/events`, {
      headers: { cookie },
      untilBody: (b) => {
        // emit once the stream is open (after its hello), so the event must arrive live
        if (!emitted && b.includes("event: hello")) {
          emitted = true;
          s.daemon.events.emit("job.state", { id: "j1", state: "running" });
        }
        return b.includes('event: bus\ndata: {"topic":"job.state"');
      },
    });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(res.body).toMatch(/event: hello\ndata: \{"history":\[/);
    expect(res.body).toMatch(/event: bus\ndata: \{"topic":"job.state"/);
  });

  it("turns the sidecar's log lines into log events", async () => {
    s.daemon.log.info({ pool: "koehr_cpu" }, "a line for the page");
    const live = JSON.parse((await raw(`${origin}/api/live`, { headers: { cookie } })).body);
    const line = live.logs.find(
      (e: { data: { msg: string } }) => e.data.msg === "a line for the page",
    );
    expect(line.data).toMatchObject({ level: "info", pool: "koehr_cpu" });
  });

  it("answers bad requests with a clear error, not a stack", async () => {
    const h = { cookie, origin, "content-type": "application/json" };
    const notJson = await raw(`${origin}/api/validate`, {
      method: "POST",
      headers: h,
      body: "{nope",
    });
    expect(notJson.status).toBe(400);
    expect(JSON.parse(notJson.body).error.message).toMatch(/not JSON/);
    const plain = await raw(`${origin}/api/validate`, {
      method: "POST",
      headers: { ...h, "content-type": "text/plain" },
      body: "{}",
    });
    expect(plain.status).toBe(400);
    const big = await raw(`${origin}/api/validate`, {
      method: "POST",
      headers: h,
      body: `{"doc": "${"x".repeat(2 * 1024 * 1024)}"}`,
    });
    expect(big.status).toBe(400);
    const unknown = await raw(`${origin}/api/reviews/nope`, { headers: { cookie } });
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.body).error.message).toMatch(/No review with id `nope`/);
    expect((await raw(`${origin}/api/nothing-here`, { headers: { cookie } })).status).toBe(404);
    expect((await raw(`${origin}/assets/../package.json`, { headers: { cookie } })).status).toBe(
      404,
    );
    expect(
      (await raw(`${origin}/assets/%2e%2e%2fpackage.json`, { headers: { cookie } })).status,
    ).toBe(404);
  });

  it("web.review of a file that cannot be read fails with INVALID_ARGUMENT", async () => {
    await expect(
      s.client.call("web.review", { file: `${s.dir}/missing.json` }),
    ).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringMatching(/Cannot read the executors file/),
    });
  });
});
