import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ParallelWorksResolver } from "../../src/executors/resolvers/parallel-works.js";
import { resolverFor } from "../../src/executors/resolvers/resolver.js";
import { isSidecarError } from "../../src/errors.js";

/** A local stand-in for the platform: answers GET /api/resources?key=K with `pools(n)` for the n-th request. */
async function platform(
  pools: (n: number) => unknown,
  key = "secret-key",
  status = 200,
): Promise<{ url: string; server: Server; requests: string[] }> {
  const requests: string[] = [];
  let n = 0;
  const server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const u = new URL(req.url ?? "/", "http://x");
    if (u.pathname !== "/api/resources") return void res.writeHead(404).end();
    if (u.searchParams.get("key") !== key) return void res.writeHead(401).end("bad key");
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(pools(n++)));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, requests };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

describe("ParallelWorksResolver", () => {
  it("polls until the pool is on and has a master node, matching names without underscores", {
    timeout: 10_000,
  }, async () => {
    const p = await platform((n) => [
      { name: null, status: "off", state: {} },
      { name: "other", status: "on", state: { masterNode: "10.9.9.9" } },
      n === 0
        ? { name: "koehrcpu", status: "off", state: {} }
        : n === 1
          ? { name: "koehrcpu", status: "on", state: {} }
          : { name: "koehrcpu", status: "on", state: { masterNode: "34.136.254.27" } },
    ]);
    const progress: string[] = [];
    const r = new ParallelWorksResolver({
      baseUrl: p.url,
      apiKey: "secret-key",
      user: "Alvaro.Vidal",
      pollMs: 10,
    });
    const res = await r.resolve("koehr_cpu", { onProgress: (m) => progress.push(m) });
    expect(res).toEqual({ hostIp: "34.136.254.27", hostUser: "Alvaro.Vidal" });
    expect(progress).toEqual([
      "pool koehr_cpu is off, waiting for it to be on",
      "pool koehr_cpu is on, waiting for its master node address",
    ]);
    expect(p.requests).toHaveLength(3);
  });

  it("fails clearly for an unknown pool, a refused key, a broken answer, and a timeout", {
    timeout: 10_000,
  }, async () => {
    const p = await platform(() => [
      { name: "a_pool", status: "on", state: { masterNode: "1.2.3.4" } },
    ]);
    const expectFail = async (r: ParallelWorksResolver, pool: string, text: string) => {
      try {
        await r.resolve(pool);
        expect.unreachable();
      } catch (err) {
        expect(isSidecarError(err, "RESOLVER_FAILED")).toBe(true);
        expect((err as Error).message).toContain(text);
        expect((err as Error).message).not.toContain("secret-key");
      }
    };
    await expectFail(
      new ParallelWorksResolver({
        baseUrl: p.url,
        apiKey: "secret-key",
        pollMs: 1,
        notFoundPolls: 2,
      }),
      "nope",
      "has no pool named `nope`",
    );
    await expectFail(
      new ParallelWorksResolver({ baseUrl: p.url, apiKey: "wrong-secret-key", pollMs: 1 }),
      "a_pool",
      "refused PW_API_KEY (HTTP 401)",
    );
    const off = await platform(() => [{ name: "slow", status: "off", state: {} }]);
    await expectFail(
      new ParallelWorksResolver({
        baseUrl: off.url,
        apiKey: "secret-key",
        pollMs: 5,
        timeoutMs: 30,
      }),
      "slow",
      "Gave up waiting for Parallel Works pool `slow`: pool slow is off",
    );
    const bad = await platform(() => ({ not: "a list" }));
    await expectFail(
      new ParallelWorksResolver({ baseUrl: bad.url, apiKey: "secret-key" }),
      "x",
      "did not answer with a list",
    );
    await expectFail(
      new ParallelWorksResolver({ baseUrl: "http://127.0.0.1:1", apiKey: "secret-key" }),
      "x",
      "Cannot reach the Parallel Works API",
    );
  });

  it("is configured from the environment", () => {
    expect(() => resolverFor("parallelworks", {})).toThrow(/PW_API_KEY/);
    expect(() => resolverFor("parallelworks", { PW_API_KEY: "k" })).toThrow(/PARSL_CLIENT_HOST/);
    expect(
      resolverFor("parallelworks", { PW_API_KEY: "k", PARSL_CLIENT_HOST: "cloud.parallel.works" })
        .name,
    ).toBe("parallelworks");
    expect(() => resolverFor("other", {})).toThrow(/Unknown RESOLVER/);
  });
});
