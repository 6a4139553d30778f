import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { z } from "zod";
import { SidecarClient } from "../../src/client/client.js";
import { SidecarError } from "../../src/errors.js";
import { EventBus, type SidecarEvent } from "../../src/events.js";
import type { ConnectionInfo } from "../../src/rpc/connection-file.js";
import { pack, unpack } from "../../src/rpc/envelope.js";
import { defineMethod, Registry } from "../../src/rpc/registry.js";
import { RpcServer } from "../../src/rpc/server.js";
import { currentCause } from "../../src/rpc/call-cause.js";
import { silentLogger } from "../../src/util/logger.js";
import { newKey } from "../../src/rpc/connection-file.js";

/** A raw DEALER on `endpoint` for `fn`, closed after it (receive times out after `receiveTimeout` ms). */
async function withDealer(
  endpoint: string,
  receiveTimeout: number | undefined,
  fn: (d: Dealer) => Promise<void>,
): Promise<void> {
  const d = new Dealer({ linger: 0, ...(receiveTimeout === undefined ? {} : { receiveTimeout }) });
  d.connect(endpoint);
  try {
    await fn(d);
  } finally {
    d.close();
  }
}

function methods(server: () => RpcServer, events?: EventBus): Registry {
  const r = new Registry();
  r.add(
    defineMethod({
      name: "t.cause",
      description: "who caused the work running now (and what it starts later)",
      params: z.object({}).strict(),
      result: z.unknown(),
      handler: async () => {
        await new Promise((r) => setTimeout(r, 5));
        return currentCause() ?? null;
      },
    }),
    defineMethod({
      name: "t.note",
      description: "an event addressed to the caller (as an ssh.prompt is)",
      params: z.object({}).strict(),
      result: z.object({}),
      handler: (_p, ctx) => {
        events?.emit("t.note", { for: "caller" }, { to: ctx.client });
        return {};
      },
    }),
    defineMethod({
      name: "t.echo",
      description: "echo",
      params: z
        .object({
          value: z.unknown().optional(),
          delay_ms: z.number().int().min(0).default(0),
          steps: z.number().int().default(0),
        })
        .strict(),
      result: z.object({ value: z.unknown() }),
      handler: async (p, ctx) => {
        for (let i = 1; i <= p.steps; i++) ctx.progress({ step: i });
        if (p.delay_ms) await new Promise((r) => setTimeout(r, p.delay_ms));
        return { value: p.value ?? null };
      },
    }),
    defineMethod({
      name: "t.fail",
      description: "fails with a known code",
      params: z.object({}),
      result: z.object({}),
      handler: () => {
        throw new SidecarError("STAGING_NOT_FOUND", "no such file", { data: { path: "/x" } });
      },
    }),
    defineMethod({
      name: "t.crash",
      description: "a bug",
      params: z.object({}),
      result: z.object({}),
      handler: () => {
        throw new TypeError("oops");
      },
    }),
    defineMethod({
      name: "t.unencodable",
      description: "a result MessagePack cannot carry, returned synchronously or not",
      params: z.object({ later: z.boolean().default(false) }),
      result: z.unknown(),
      handler: (p) => (p.later ? Promise.resolve({ n: 2n ** 70n }) : { n: 2n ** 70n }),
    }),
    defineMethod({
      name: "sidecar.subscribe",
      description: "subscribe",
      params: z.object({
        topics: z.array(z.string()).default([]),
        history: z.boolean().default(false),
      }),
      result: z.unknown(),
      handler: (p, ctx) => ({
        lease_ms: server().subscribe(ctx.client, p.topics, ctx.requestId),
        history: [],
      }),
    }),
    defineMethod({
      name: "sidecar.unsubscribe",
      description: "unsubscribe",
      params: z.object({}),
      result: z.unknown(),
      handler: (_p, ctx) => {
        server().unsubscribe(ctx.client);
        return { ok: true };
      },
    }),
  );
  return r;
}

for (const transport of ["ipc", "tcp"] as const) {
  describe(`RpcServer over ${transport}`, () => {
    let dir: string;
    let key: Buffer;
    let info: ConnectionInfo;
    let client: SidecarClient;
    const events = new EventBus();
    let srv: RpcServer;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "psc-srv-"));
      key = newKey();
      srv = new RpcServer(
        key,
        methods(() => srv, events),
        events,
        silentLogger,
      );
      const endpoint = await srv.bind(
        transport === "ipc" ? `ipc://${join(dir, "s.sock")}` : "tcp://127.0.0.1:*",
      );
      info = {
        endpoint,
        protocol_version: 1,
        signature_scheme: "hmac-sha256",
        key: key.toString("hex"),
        pid: process.pid,
        started_at: new Date().toISOString(),
        version: "test",
      };
      client = SidecarClient.fromInfo(info);
    });

    afterAll(async () => {
      client?.close();
      await srv?.close(100);
      rmSync(dir, { recursive: true, force: true });
    });

    it("answers many concurrent calls, each with its own result", async () => {
      const values = Array.from({ length: 200 }, (_, i) => `v${i}`);
      const got = await Promise.all(
        values.map((value, i) =>
          client.call<{ value: string }>("t.echo", { value, delay_ms: i % 7 }),
        ),
      );
      expect(got.map((g) => g.value)).toEqual(values);
    });

    it("does not hold a fast call behind a slow one", async () => {
      let slowDone = false;
      const slow = client.call("t.echo", { delay_ms: 800 }).then(() => (slowDone = true));
      await client.call("t.echo", { value: 1 });
      expect(slowDone).toBe(false);
      await slow;
    });

    it("sends progress before the reply", async () => {
      const seen: unknown[] = [];
      await client.call("t.echo", { steps: 3 }, { onProgress: (p) => seen.push(p) });
      expect(seen).toEqual([{ step: 1 }, { step: 2 }, { step: 3 }]);
    });

    it("reports an unknown method", async () => {
      await expect(client.call("t.nope")).rejects.toMatchObject({
        code: "UNKNOWN_METHOD",
        message: expect.stringContaining("t.nope"),
      });
    });

    it("names the field and the value of invalid params", async () => {
      const err = await client.call("t.echo", { delay_ms: "x" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SidecarError);
      expect((err as SidecarError).code).toBe("INVALID_PARAMS");
      expect((err as SidecarError).message).toContain("params.delay_ms");
      expect((err as SidecarError).message).toContain('`"x"` (string)');
    });

    it("carries a handler's error code and data, and hides nothing of a bug but its message", async () => {
      await expect(client.call("t.fail")).rejects.toMatchObject({
        code: "STAGING_NOT_FOUND",
        data: { path: "/x" },
      });
      await expect(client.call("t.crash")).rejects.toMatchObject({
        code: "INTERNAL",
        message: "oops",
      });
    });

    it("answers INTERNAL for a result it cannot encode, and keeps serving", async () => {
      for (const later of [false, true]) {
        await expect(client.call("t.unencodable", { later })).rejects.toMatchObject({
          code: "INTERNAL",
          message: expect.stringContaining("could not encode its reply"),
        });
      }
      expect(await client.call("t.echo", { value: 1 })).toEqual({ value: 1 });
    });

    it("drops a message signed with another key and counts it", async () => {
      const before = srv.stats.dropped.signature;
      const forged = SidecarClient.fromInfo({ ...info, key: newKey().toString("hex") });
      try {
        await expect(forged.call("t.echo", {}, { timeout: 300 })).rejects.toMatchObject({
          code: "TIMEOUT",
        });
      } finally {
        forged.close();
      }
      expect(srv.stats.dropped.signature).toBe(before + 1);
      await expect(client.call("t.echo", { value: 2 })).resolves.toEqual({ value: 2 });
    });

    it("answers another protocol version with VERSION_MISMATCH", async () => {
      await withDealer(info.endpoint, undefined, async (d) => {
        await d.send(
          pack(key, { v: 2, id: "x-1", type: "request", method: "t.echo", ts: Date.now() }, {}),
        );
        const [frames] = await Promise.all([d.receive()]);
        const msg = unpack(key, frames);
        expect(msg.ok).toBe(true);
        if (msg.ok) {
          expect(msg.header.reply_to).toBe("x-1");
          expect(msg.body).toMatchObject({
            error: { code: "VERSION_MISMATCH", data: { got: 2, supported: [1] } },
          });
        }
      });
    });

    it("answers a signed request whose method is not a name with UNKNOWN_METHOD, naming the value", async () => {
      await withDealer(info.endpoint, 5000, async (d) => {
        for (const [id, method] of [
          ["m-1", 123],
          ["m-2", ""],
          ["m-3", undefined],
        ] as const) {
          await d.send(
            pack(key, { v: 1, id, type: "request", method, ts: Date.now() } as never, {}),
          );
          const msg = unpack(key, await d.receive());
          expect(msg.ok).toBe(true);
          if (msg.ok) {
            expect(msg.header.reply_to).toBe(id);
            expect(msg.body).toMatchObject({
              error: {
                code: "UNKNOWN_METHOD",
                message: expect.stringContaining(
                  "Expected the request's `method` to be a method name",
                ),
              },
            });
          }
        }
      });
      await expect(client.call("t.echo", { value: 3 })).resolves.toEqual({ value: 3 });
    });

    it("drops a replayed message", async () => {
      await withDealer(info.endpoint, 500, async (d) => {
        const frames = pack(
          key,
          { v: 1, id: "r-1", type: "request", method: "t.echo", ts: Date.now() },
          { value: "once" },
        );
        await d.send(frames);
        await d.receive();
        const before = srv.stats.dropped.replay;
        await d.send(frames);
        await expect(d.receive()).rejects.toMatchObject({ code: "EAGAIN" });
        expect(srv.stats.dropped.replay).toBe(before + 1);
      });
    });

    it("serves each call of a batch as if it came alone and sends the replies back batched", async () => {
      await withDealer(info.endpoint, 5000, async (d) => {
        const now = Date.now();
        const item = (id: string, method: string, params: unknown, v = 1) => [
          { v, id, type: "request", method, ts: now },
          params,
        ];
        const items = [
          item("b-1", "t.echo", { value: 1 }),
          item("b-2", "t.nope", {}),
          item("b-3", "t.echo", { value: "x", bogus: true }),
          item("b-4", "t.fail", {}),
          item("b-5", "t.echo", {}, 2),
          item("b-6", "t.echo", { value: 6, delay_ms: 30, steps: 1 }),
        ];
        await d.send(pack(key, { v: 1, id: "batch-1", type: "batch", ts: now }, items));
        const replies = new Map<string, unknown>();
        const progress: string[] = [];
        let batches = 0;
        while (replies.size < items.length) {
          const msg = unpack(key, await d.receive());
          if (!msg.ok) throw new Error(`bad reply: ${msg.detail}`);
          if (msg.header.type === "batch") batches++;
          const inner: Array<[Record<string, unknown>, unknown]> =
            msg.header.type === "batch"
              ? (msg.body as Array<[Record<string, unknown>, unknown]>)
              : [[msg.header as unknown as Record<string, unknown>, msg.body]];
          for (const [h, body] of inner) {
            if (h.type === "progress") progress.push(String(h.reply_to));
            else replies.set(String(h.reply_to), body);
          }
        }
        // the five that end at once come back in one message; the slow one alone, after its progress
        expect(batches).toBe(1);
        expect(progress).toEqual(["b-6"]);
        expect(replies.get("b-1")).toEqual({ result: { value: 1 } });
        expect(replies.get("b-2")).toMatchObject({ error: { code: "UNKNOWN_METHOD" } });
        expect(replies.get("b-3")).toMatchObject({
          error: { code: "INVALID_PARAMS", message: expect.stringContaining("bogus") },
        });
        expect(replies.get("b-4")).toMatchObject({
          error: { code: "STAGING_NOT_FOUND", data: { path: "/x" } },
        });
        expect(replies.get("b-5")).toMatchObject({ error: { code: "VERSION_MISMATCH" } });
        expect(replies.get("b-6")).toEqual({ result: { value: 6 } });
        // a call sent alone is still answered alone
        await d.send(
          pack(
            key,
            { v: 1, id: "single-1", type: "request", method: "t.echo", ts: Date.now() },
            { value: 7 },
          ),
        );
        const single = unpack(key, await d.receive());
        expect(single.ok && single.header.type).toBe("reply");
      });
    });

    it("drops a malformed or replayed batch without a reply, and keeps serving", async () => {
      await withDealer(info.endpoint, 500, async (d) => {
        const decode = srv.stats.dropped.decode;
        await d.send(
          pack(key, { v: 1, id: "bad-1", type: "batch", ts: Date.now() }, { not: "a list" }),
        );
        await d.send(
          pack(key, { v: 1, id: "bad-2", type: "batch", ts: Date.now() }, [
            [{ id: "no-v-or-ts" }, {}],
          ]),
        );
        await expect(d.receive()).rejects.toMatchObject({ code: "EAGAIN" });
        expect(srv.stats.dropped.decode).toBe(decode + 2);
        const frames = pack(key, { v: 1, id: "rb-1", type: "batch", ts: Date.now() }, [
          [
            { v: 1, id: "rb-a", type: "request", method: "t.echo", ts: Date.now() },
            { value: "once" },
          ],
        ]);
        await d.send(frames);
        const first = unpack(key, await d.receive());
        expect(first.ok && first.header.reply_to).toBe("rb-a"); // a batch of one reply goes alone
        const replay = srv.stats.dropped.replay;
        await d.send(frames);
        await expect(d.receive()).rejects.toMatchObject({ code: "EAGAIN" });
        expect(srv.stats.dropped.replay).toBe(replay + 1);
        await expect(client.call("t.echo", { value: 3 })).resolves.toEqual({ value: 3 });
      });
    });

    it("runs each call as caused by its client, session and request", async () => {
      const cause = await client.call<Record<string, string>>("t.cause");
      expect(cause).toMatchObject({ session: client.session, method: "t.cause" });
      expect(cause.request).toMatch(new RegExp(`^${client.session}-`));
      expect(cause.client).toMatch(/^[0-9a-f]+$/);
    });

    it("sends an event addressed to a client that did not subscribe to it", async () => {
      await withDealer(info.endpoint, 2000, async (d) => {
        await d.send(
          pack(key, { v: 1, id: "n0te-1", type: "request", method: "t.note", ts: Date.now() }, {}),
        );
        const types: string[] = [];
        for (let i = 0; i < 2; i++) {
          const m = unpack(key, await d.receive());
          if (!m.ok) throw new Error("unsigned");
          types.push(m.header.type);
          if (m.header.type === "event")
            expect(m.body).toEqual({
              topic: "t.note",
              ts: expect.any(Number),
              data: { for: "caller" },
            });
        }
        expect(types.sort()).toEqual(["event", "reply"]);
      });
    });

    it("knows which session listens for which topic", async () => {
      expect(srv.listening(client.session, "ssh.prompt")).toBe(false);
      const stop = await client.subscribe(["ssh.prompt"], () => undefined);
      expect(srv.listening(client.session, "ssh.prompt")).toBe(true);
      expect(srv.listening(client.session, "ssh.prompt.closed")).toBe(true);
      expect(srv.listening(client.session, "ssh.state")).toBe(false);
      expect(srv.listening("other-session", "ssh.prompt")).toBe(false);
      await stop();
      expect(srv.listening(client.session, "ssh.prompt")).toBe(false);
    });

    it("delivers subscribed events by topic prefix until unsubscribed", async () => {
      const got: SidecarEvent[] = [];
      let arrived!: () => void;
      const jobEvent = new Promise<void>((r) => (arrived = r));
      const stop = await client.subscribe(["job"], (e) => {
        got.push(e);
        if (e.topic === "job.state") arrived();
      });
      expect(srv.subscriberCount).toBe(1);
      events.emit("tunnel.state", { up: true }); // not subscribed: never sent
      events.emit("jobs", { x: 1 }); // a prefix match must end at a dot
      events.emit("job.state", { id: 1 });
      await jobEvent; // events to one client arrive in order, so the others were not sent
      expect(got.map((e) => [e.topic, e.data])).toEqual([["job.state", { id: 1 }]]);
      await stop();
      expect(srv.subscriberCount).toBe(0);
    });
  });
}
