/**
 * The event bus: services emit (progress, state changes), the RPC layer publishes to
 * subscribed clients, the web page renders. Events flow one way.
 */
import { EventEmitter } from "node:events";

export interface SidecarEvent {
  /** dotted topic, e.g. `tunnel.state`, `transfer.progress`, `job.state`, `log` */
  topic: string;
  ts: number;
  data: Record<string, unknown>;
  /**
   * An RPC client (routing identity, hex) that gets this event even without a subscription: the
   * one that caused it (an `ssh.prompt` goes to the client whose call opened the connection).
   */
  to?: string;
}

export class EventBus {
  private readonly emitter = new EventEmitter();
  private readonly recent: SidecarEvent[] = [];

  constructor(private readonly keep = 500) {
    this.emitter.setMaxListeners(0);
  }

  emit(topic: string, data: Record<string, unknown>, opts: { to?: string } = {}): void {
    const event: SidecarEvent = { topic, ts: Date.now(), data };
    if (opts.to !== undefined) event.to = opts.to;
    this.recent.push(event);
    if (this.recent.length > this.keep) this.recent.shift();
    this.emitter.emit("event", event);
  }

  /** Listen to every event whose topic starts with one of `prefixes` (all when empty). */
  on(prefixes: readonly string[], listener: (event: SidecarEvent) => void): () => void {
    const wrapped = (e: SidecarEvent): void => {
      if (matches(prefixes, e.topic)) listener(e);
    };
    this.emitter.on("event", wrapped);
    return () => this.emitter.off("event", wrapped);
  }

  /** The last events kept in memory, oldest first. */
  history(prefixes: readonly string[] = []): SidecarEvent[] {
    return this.recent.filter((e) => matches(prefixes, e.topic));
  }
}

export function matches(prefixes: readonly string[], topic: string): boolean {
  return (
    prefixes.length === 0 ||
    prefixes.some((p) => topic === p || topic.startsWith(`${p}.`) || p === "*")
  );
}
