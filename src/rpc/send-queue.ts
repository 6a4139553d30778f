/**
 * zeromq.js allows one send at a time per socket; this queue serializes sends from many
 * concurrent handlers without making any of them wait for the others.
 */
import type { Router, Dealer } from "zeromq";
import { within } from "../util/timeout.js";

type Frames = Buffer[];

export class SendQueue {
  private readonly queue: Frames[] = [];
  private draining: Promise<void> | undefined;

  constructor(private readonly socket: Router | Dealer) {}

  push(frames: Frames): void {
    this.queue.push(frames);
    this.draining ??= this.drain();
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const frames = this.queue.shift()!;
        try {
          await this.socket.send(frames);
        } catch {
          // a closed socket or an unroutable peer: the message is lost, like any ZeroMQ drop
          if (this.socket.closed) {
            this.queue.length = 0;
            return;
          }
        }
      }
    } finally {
      // in the same tick as the empty-queue check: a push after this starts a new drain (a
      // `.finally()` callback would run a microtask later and strand a message pushed between)
      this.draining = undefined;
    }
  }

  /** Wait until queued messages are handed to ZeroMQ, at most `timeoutMs`. */
  async flush(timeoutMs: number): Promise<void> {
    if (!this.draining) return;
    await within(this.draining, timeoutMs, undefined, { unref: true });
  }
}
