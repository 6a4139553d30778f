/**
 * The RPC server: a ZeroMQ ROUTER socket that checks every message's signature, version and
 * freshness, runs requests concurrently through the registry, and sends replies, progress and
 * subscribed events back to the caller. Unauthenticated traffic is dropped without a reply.
 * The socket is ./zmtp/router.ts (ZMTP in the event loop, no libzmq I/O thread in between).
 */
import { randomBytes } from "node:crypto";
import { SidecarError, toSidecarError, type ErrorPayload } from "../errors.js";
import { type EventBus, matches, type SidecarEvent } from "../events.js";
import type { Logger } from "../util/logger.js";
import { describeValue } from "../util/validation.js";
import {
  isHeader,
  MAX_BATCH,
  PROTOCOL_VERSION,
  pack,
  unpack,
  type Header,
  type MessageType,
} from "./envelope.js";
import { sessionOfId, withCause } from "./call-cause.js";
import type { CallContext, Registry } from "./registry.js";
import { ReplayGuard } from "./replay-guard.js";
import { DEFAULT_LIMITS, LIMIT_ENV, type RpcLimits } from "./limits.js";
import { type RouterLimit, ZmtpRouter } from "./zmtp/router.js";
import { within } from "../util/timeout.js";

export interface ServerStats {
  received: number;
  replied: number;
  inFlight: number;
  dropped: {
    framing: number;
    signature: number;
    decode: number;
    replay: number;
    stale: number;
    type: number;
  };
  /** replies and events not sent: their client had gone, or was not reading its queue */
  undelivered: { unroutable: number; full: number };
  /** connections closed for going past a limit (docs/protocol.md, Limits) */
  disconnected: Record<RouterLimit, number>;
}

interface Subscription {
  prefixes: string[];
  expires: number;
  /** the subscriber's session (its message ids are SESSION-N), when its ids have that form */
  session: string | undefined;
}

const SUBSCRIPTION_LEASE_MS = 60_000;
const DONE = Promise.resolve();

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

export class RpcServer {
  // messages are served in the tick they arrive, and a reply is written to its connection in the
  // tick that produced it (a ROUTER never blocks a send: it drops for a gone or full peer)
  private readonly socket: ZmtpRouter;
  private readonly guard = new ReplayGuard();
  private readonly inFlight = new Map<
    string,
    { identity: Buffer; id: string; done: Promise<void> }
  >();
  private readonly subscriptions = new Map<string, Subscription>();
  // replies to calls that came in a batch, per client, sent together at the end of the tick
  private readonly batchOut = new Map<
    string,
    { identity: Buffer; items: Array<[Header, unknown]> }
  >();
  private batchFlush: NodeJS.Immediate | undefined;
  private readonly abort = new AbortController();
  private readonly session = randomBytes(4).toString("hex");
  private counter = 0;
  private closing = false;
  private unlisten: (() => void) | undefined;
  private limitLogs = 0;
  readonly stats: ServerStats;

  constructor(
    private readonly key: Buffer,
    private readonly registry: Registry,
    private readonly events: EventBus,
    private readonly log: Logger,
    limits: RpcLimits = DEFAULT_LIMITS,
  ) {
    this.socket = new ZmtpRouter({
      onMessage: (frames) => this.onMessageSafely(frames),
      onProtocolError: (detail) => this.drop("framing", `connection closed: ${detail}`),
      onLimit: (limit, value, detail) => this.overLimit(limit, value, detail),
      ...limits,
    });
    this.stats = {
      received: 0,
      replied: 0,
      inFlight: 0,
      dropped: { framing: 0, signature: 0, decode: 0, replay: 0, stale: 0, type: 0 },
      undelivered: this.socket.dropped,
      disconnected: this.socket.disconnected,
    };
  }

  /** Open connections, those that have not sent a signed message, bytes of messages in progress. */
  get connections(): { open: number; unsigned: number; pending_bytes: number } {
    return this.socket.connections;
  }

  async bind(endpoint: string): Promise<string> {
    const bound = await this.socket.bind(endpoint);
    this.unlisten = this.events.on([], (e) => this.publish(e));
    return bound;
  }

  /**
   * Subscribe a client (by routing identity) to topics for a lease that the client renews.
   * `requestId` (the subscribe call's id) tells the client's session.
   */
  subscribe(client: string, prefixes: string[], requestId = ""): number {
    const expires = Date.now() + SUBSCRIPTION_LEASE_MS;
    this.subscriptions.set(client, { prefixes, expires, session: sessionOfId(requestId) });
    return SUBSCRIPTION_LEASE_MS;
  }

  /**
   * Whether a client of `session` (from any of its sockets) holds a live subscription that gets
   * events of `topic`: how the prompt broker knows a caller will answer its prompts.
   */
  listening(session: string, topic: string): boolean {
    const now = Date.now();
    for (const sub of this.subscriptions.values())
      if (sub.session === session && sub.expires >= now && matches(sub.prefixes, topic))
        return true;
    return false;
  }

  unsubscribe(client: string): void {
    this.subscriptions.delete(client);
  }

  get subscriberCount(): number {
    return this.subscriptions.size;
  }

  private publish(event: SidecarEvent): void {
    const { topic, to } = event;
    // the wire body is {topic, ts, data}: who it is addressed to stays here
    const body = to === undefined ? event : { topic, ts: event.ts, data: event.data };
    let reachedTo = false;
    if (this.subscriptions.size > 0) {
      const now = Date.now();
      for (const [client, sub] of this.subscriptions) {
        if (sub.expires < now) {
          this.subscriptions.delete(client);
          continue;
        }
        if (matches(sub.prefixes, topic)) {
          this.send(Buffer.from(client, "hex"), "event", undefined, body, topic);
          if (client === to) reachedTo = true;
        }
      }
    }
    if (to !== undefined && !reachedTo && /^[0-9a-f]+$/.test(to))
      this.send(Buffer.from(to, "hex"), "event", undefined, body, topic);
  }

  private nextId(): string {
    return `${this.session}-${(this.counter++).toString(36)}`;
  }

  private header(
    type: MessageType,
    replyTo: string | undefined,
    topic?: string,
  ): Header & { topic?: string } {
    const header: Header & { topic?: string } = {
      v: PROTOCOL_VERSION,
      id: this.nextId(),
      type,
      ts: Date.now(),
    };
    if (replyTo !== undefined) header.reply_to = replyTo;
    if (topic !== undefined) header.topic = topic;
    return header;
  }

  private send(
    identity: Buffer,
    type: MessageType,
    replyTo: string | undefined,
    body: unknown,
    topic?: string,
  ): void {
    this.emit([identity, ...pack(this.key, this.header(type, replyTo, topic), body)]);
  }

  /** Writes one message to its client's connection now (dropped if the client is gone). */
  private emit(frames: Buffer[]): void {
    this.socket.send(frames);
  }

  /** A reply to a call that came in a batch: queued, and sent with the others of this tick. */
  private sendBatched(identity: Buffer, client: string, replyTo: string, body: unknown): void {
    let out = this.batchOut.get(client);
    if (!out) this.batchOut.set(client, (out = { identity, items: [] }));
    out.items.push([this.header("reply", replyTo), body]);
    this.batchFlush ??= setImmediate(() => this.flushBatches());
  }

  private flushBatches(): void {
    if (this.batchFlush) clearImmediate(this.batchFlush);
    this.batchFlush = undefined;
    for (const { identity, items } of this.batchOut.values()) {
      if (items.length === 1) {
        this.emit([identity, ...pack(this.key, items[0]![0], items[0]![1])]);
        continue;
      }
      for (let at = 0; at < items.length; at += MAX_BATCH) {
        this.emit([
          identity,
          ...pack(this.key, this.header("batch", undefined), items.slice(at, at + MAX_BATCH)),
        ]);
      }
    }
    this.batchOut.clear();
  }

  private onMessageSafely(frames: Buffer[]): void {
    try {
      this.onMessage(frames);
    } catch (err) {
      // a bug in serving one message (handlers run in this tick) must not stop the server
      this.log.error(
        { err: (err as Error).message, stack: (err as Error).stack },
        "rpc message handling failed",
      );
    }
  }

  private drop(reason: keyof ServerStats["dropped"], detail: string): void {
    this.stats.dropped[reason]++;
    const total = Object.values(this.stats.dropped).reduce((a, b) => a + b, 0);
    // log the first few and then every 1000th, so a flood cannot fill the disk
    if (total <= 20 || total % 1000 === 0)
      this.log.warn({ reason, detail, dropped: this.stats.dropped }, "rpc message dropped");
  }

  private overLimit(limit: RouterLimit, value: number, detail: string): void {
    // as drop(): the first few, then every 1000th, so a flood cannot fill the disk
    this.limitLogs++;
    if (this.limitLogs <= 20 || this.limitLogs % 1000 === 0)
      this.log.warn(
        { limit, value, env: LIMIT_ENV[limit], detail, disconnected: this.stats.disconnected },
        `rpc connection closed: over the ${limit} limit of ${value} (${LIMIT_ENV[limit]})`,
      );
  }

  private onMessage(frames: Buffer[]): void {
    this.stats.received++;
    const identity = frames[0];
    if (!identity || frames.length < 2) return this.drop("framing", "no routing identity");
    const msg = unpack(this.key, frames.slice(1));
    if (!msg.ok) return this.drop(msg.reason, msg.detail);
    const verdict = this.guard.check(msg.signature, msg.header.ts);
    if (verdict) return this.drop(verdict, `message ${msg.header.id}`);
    // signed, fresh and new: its connection is a client's, not one of the unsigned
    this.socket.markSigned(identity);
    const { header } = msg;
    const client = identity.toString("hex");
    if (header.type === "batch" && header.v === PROTOCOL_VERSION) {
      // one signed envelope around many requests (docs/protocol.md, Batches): each is served as
      // if it had come alone, and their replies travel back in batches
      const items = msg.body;
      if (
        !Array.isArray(items) ||
        items.length > MAX_BATCH ||
        !items.every((it) => Array.isArray(it) && it.length === 2 && isHeader(it[0]))
      ) {
        return this.drop(
          "decode",
          `batch ${header.id}: expected up to ${MAX_BATCH} [header, body] pairs`,
        );
      }
      for (const [h, body] of items as Array<[Header, unknown]>)
        this.onRequest(identity, client, h, body, true);
      return;
    }
    this.onRequest(identity, client, header, msg.body, false);
  }

  private onRequest(
    identity: Buffer,
    client: string,
    header: Header,
    body: unknown,
    batched: boolean,
  ): void {
    const reply = (payload: unknown): void =>
      batched
        ? this.sendBatched(identity, client, header.id, payload)
        : this.send(identity, "reply", header.id, payload);
    if (header.v !== PROTOCOL_VERSION) {
      const err = new SidecarError(
        "VERSION_MISMATCH",
        `Protocol version ${header.v} is not supported; this sidecar speaks version ${PROTOCOL_VERSION}. Use a client of the same parsl-sidecar release.`,
        {
          data: { got: header.v, supported: [PROTOCOL_VERSION] },
        },
      );
      return reply({ error: err.toPayload() });
    }
    if (header.type !== "request") return this.drop("type", `message type ${header.type}`);
    if (typeof header.method !== "string" || header.method === "") {
      // signed by a holder of the key: a bug in its client, which hears of it rather than waiting
      return reply({
        error: new SidecarError(
          "UNKNOWN_METHOD",
          `Expected the request's \`method\` to be a method name such as "sidecar.ping", got ${describeValue(header.method)}`,
        ).toPayload(),
      });
    }
    if (this.closing) {
      return reply({
        error: new SidecarError("SHUTTING_DOWN", "The sidecar is shutting down").toPayload(),
      });
    }
    const key = `${client}/${header.id}`;
    const ctx: CallContext = {
      client,
      requestId: header.id,
      progress: (data) => this.send(identity, "progress", header.id, data),
      signal: this.abort.signal,
      events: this.events,
      log: this.log,
    };
    // registered before the handler runs, so that a synchronous handler (status) counts itself
    const entry = { identity, id: header.id, done: DONE };
    this.inFlight.set(key, entry);
    this.stats.inFlight = this.inFlight.size;
    let result: unknown;
    try {
      // what the call starts (an SSH connection that asks for a code) knows who to ask
      const method = header.method;
      const cause = { client, session: sessionOfId(header.id), request: header.id, method };
      result = withCause(cause, () => this.registry.start(method, body, ctx));
    } catch (err) {
      return this.finish(key, { error: this.failure(header.method, err) }, reply);
    }
    if (!isThenable(result)) return this.finish(key, { result: result ?? null }, reply);
    // an asynchronous handler: answered when it settles, while the others are served
    entry.done = Promise.resolve(result).then(
      (value) => this.finish(key, { result: value ?? null }, reply),
      (err: unknown) => this.finish(key, { error: this.failure(header.method, err) }, reply),
    );
  }

  private failure(method: string | undefined, err: unknown): ErrorPayload {
    const e = toSidecarError(err);
    if (e.code === "INTERNAL")
      this.log.error({ method, err: e.message, stack: (err as Error)?.stack }, "method failed");
    else this.log.debug({ method, code: e.code, err: e.message }, "method returned an error");
    return e.toPayload();
  }

  private finish(
    key: string,
    payload: { result: unknown } | { error: ErrorPayload },
    reply: (payload: unknown) => void,
  ): void {
    if (!this.inFlight.delete(key) && this.closing) return; // already failed by close()
    this.stats.inFlight = this.inFlight.size;
    this.stats.replied++;
    try {
      reply(payload);
    } catch (err) {
      // a result MessagePack cannot carry: the caller still gets an answer
      this.log.error({ err: (err as Error).message }, "a reply could not be encoded");
      reply({
        error: new SidecarError(
          "INTERNAL",
          `The sidecar could not encode its reply: ${(err as Error).message}`,
        ).toPayload(),
      });
    }
  }

  /** Stop taking requests, let in-flight ones finish for `graceMs`, fail the rest, close. */
  async close(graceMs = 3000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.unlisten?.();
    const pending = [...this.inFlight.values()];
    if (pending.length > 0) {
      await within(Promise.allSettled(pending.map((p) => p.done)), graceMs, [], { unref: true });
      this.abort.abort();
      for (const [key, p] of this.inFlight) {
        this.inFlight.delete(key);
        this.send(p.identity, "reply", p.id, {
          error: new SidecarError(
            "SHUTTING_DOWN",
            "The sidecar shut down before this call finished",
          ).toPayload(),
        });
      }
    }
    this.abort.abort();
    this.flushBatches();
    await this.socket.close();
  }
}
