// Reviews over the page's API against a real sidecar: accept writes the file (order and unknown
// keys kept), the first decision wins, a file changed on disk or that does not parse is never
// overwritten, and web.review_wait reports the outcome.
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cookieFor, openReview, startSidecar, TWO_POOLS, type Sidecar } from "./helpers.js";

async function post(
  origin: string,
  cookie: string,
  path: string,
  body: unknown,
): Promise<{ status: number; body: Record<string, any> }> {
  const res = await fetch(`${origin}${path}`, {
    method: "POST",
    headers: { cookie, origin, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function get(origin: string, cookie: string, path: string): Promise<Record<string, any>> {
  const res = await fetch(`${origin}${path}`, { headers: { cookie } });
  return (await res.json()) as Record<string, any>;
}

describe("executors review over the API", { timeout: 30_000 }, () => {
  let s: Sidecar;
  beforeAll(async () => {
    s = await startSidecar();
  });
  afterAll(async () => await s?.close());

  it("accept merges the edits into the file, keeping key order and unknown keys, and ends the wait", async () => {
    const file = s.write("accept.json", TWO_POOLS);
    const r = await openReview(s, file);
    const cookie = await cookieFor(r.url);
    const snap = await get(r.origin, cookie, `/api/reviews/${r.id}`);
    expect(Object.keys(snap.doc)).toEqual(["cpu_executor", "gpu_executor"]);
    const waiting = s.client.call<{ outcome: string }>(
      "web.review_wait",
      { id: r.id },
      { timeout: 0 },
    );
    // the page sends keys in its own order; the file keeps the original one
    const { MY_TEAM_NOTE, ...rest } = snap.doc.cpu_executor;
    const doc = {
      gpu_executor: { ...snap.doc.gpu_executor, WORKER_INIT: "module load python" },
      cpu_executor: { MY_TEAM_NOTE, ...rest, CORES_PER_WORKER: 2 },
    };
    const res = await post(r.origin, cookie, `/api/reviews/${r.id}/accept`, {
      doc,
      hash: snap.hash,
    });
    expect(res.status).toBe(200);
    expect((await waiting).outcome).toBe("accepted");
    const text = readFileSync(file, "utf8");
    const written = JSON.parse(text);
    expect(Object.keys(written)).toEqual(["cpu_executor", "gpu_executor"]);
    expect(Object.keys(written.cpu_executor)).toEqual(
      Object.keys(JSON.parse(TWO_POOLS).cpu_executor),
    );
    expect(written.cpu_executor).toMatchObject({
      CORES_PER_WORKER: 2,
      MY_TEAM_NOTE: "ask Alvaro before changing",
      CREATE_SINGULARITY_CONTAINER: "true",
    });
    expect(written.gpu_executor.WORKER_INIT).toBe("module load python");
    expect(text).toMatch(/^\{\n {4}"cpu_executor": \{\n {8}"POOL"/);
  });

  it("two accepts at once: one wins, the other gets WEB_CONFLICT", async () => {
    const file = s.write("race.json", TWO_POOLS);
    const r = await openReview(s, file);
    const [c1, c2] = [
      await cookieFor(r.url),
      await cookieFor((await s.client.call<{ url: string }>("web.open", { review: r.id })).url),
    ];
    const snap = await get(r.origin, c1, `/api/reviews/${r.id}`);
    const a = structuredClone(snap.doc);
    a.cpu_executor.CORES_PER_WORKER = 1;
    const b = structuredClone(snap.doc);
    b.cpu_executor.CORES_PER_WORKER = 16;
    const results = await Promise.all([
      post(r.origin, c1, `/api/reviews/${r.id}/accept`, { doc: a, hash: snap.hash }),
      post(r.origin, c2, `/api/reviews/${r.id}/accept`, { doc: b, hash: snap.hash }),
    ]);
    const statuses = results.map((x) => x.status).sort();
    expect(statuses).toEqual([200, 409]);
    const loser = results.find((x) => x.status === 409)!;
    expect(loser.body.error.code).toBe("WEB_CONFLICT");
    expect(loser.body.error.message).toMatch(/already accepted/);
    const winner = results.findIndex((x) => x.status === 200);
    expect(JSON.parse(readFileSync(file, "utf8")).cpu_executor.CORES_PER_WORKER).toBe(
      winner === 0 ? 1 : 16,
    );
  });

  it("a file changed on disk while open is not overwritten", async () => {
    const file = s.write("changed.json", TWO_POOLS);
    const r = await openReview(s, file);
    const cookie = await cookieFor(r.url);
    const snap = await get(r.origin, cookie, `/api/reviews/${r.id}`);
    const theirs = TWO_POOLS.replace('"CORES_PER_WORKER": 8', '"CORES_PER_WORKER": 12');
    writeFileSync(file, theirs);
    const res = await post(r.origin, cookie, `/api/reviews/${r.id}/accept`, {
      doc: snap.doc,
      hash: snap.hash,
    });
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({
      code: "WEB_CONFLICT",
      data: { reason: "file_changed" },
    });
    expect(res.body.error.message).toMatch(/changed on disk/);
    expect(readFileSync(file, "utf8")).toBe(theirs);
    // after a reload the review is open again with the new contents
    const again = await post(r.origin, cookie, `/api/reviews/${r.id}/reload`, {});
    expect(again.body.doc.gpu_executor.CORES_PER_WORKER).toBe(12);
    expect(
      (
        await post(r.origin, cookie, `/api/reviews/${r.id}/accept`, {
          doc: again.body.doc,
          hash: again.body.hash,
        })
      ).status,
    ).toBe(200);
  });

  it("a file that does not parse: the snapshot says where, accept is refused", async () => {
    const bad =
      '{\n  "cpu_executor": {\n    "POOL": "koehr_cpu"\n    "CORES_PER_WORKER": 4\n  }\n}\n';
    const file = s.write("broken.json", bad);
    const r = await openReview(s, file);
    const cookie = await cookieFor(r.url);
    const snap = await get(r.origin, cookie, `/api/reviews/${r.id}`);
    expect(snap.doc).toBeNull();
    expect(snap.parse_error).toMatchObject({ line: 4, column: 5 });
    const res = await post(r.origin, cookie, `/api/reviews/${r.id}/accept`, {
      doc: { cpu_executor: { POOL: "x" } },
      hash: snap.hash,
    });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/line 4, column 5/);
    expect(readFileSync(file, "utf8")).toBe(bad);
  });

  it("an invalid document is refused with the check's messages and nothing is written", async () => {
    const file = s.write("invalid.json", TWO_POOLS);
    const r = await openReview(s, file);
    const cookie = await cookieFor(r.url);
    const snap = await get(r.origin, cookie, `/api/reviews/${r.id}`);
    const res = await post(r.origin, cookie, `/api/reviews/${r.id}/accept`, {
      doc: { ...snap.doc, gpu_executor: "nope" },
      hash: snap.hash,
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("EXECUTORS_INVALID");
    expect(res.body.error.data.issues[0].path).toBe("gpu_executor");
    expect(readFileSync(file, "utf8")).toBe(TWO_POOLS);
  });

  it("cancel ends the wait with cancelled; a later accept is told", async () => {
    const file = s.write("cancel.json", TWO_POOLS);
    const r = await openReview(s, file);
    const cookie = await cookieFor(r.url);
    const snap = await get(r.origin, cookie, `/api/reviews/${r.id}`);
    const waiting = s.client.call<{ outcome: string }>(
      "web.review_wait",
      { id: r.id },
      { timeout: 0 },
    );
    expect((await post(r.origin, cookie, `/api/reviews/${r.id}/cancel`, {})).status).toBe(200);
    expect((await waiting).outcome).toBe("cancelled");
    const late = await post(r.origin, cookie, `/api/reviews/${r.id}/accept`, {
      doc: snap.doc,
      hash: snap.hash,
    });
    expect(late.status).toBe(409);
    expect(late.body.error.message).toMatch(/already cancelled/);
    expect(readFileSync(file, "utf8")).toBe(TWO_POOLS);
  });
});
