/**
 * The session slots of one ssh2 connection: at most `max` session channels (exec, spawn, SFTP) at
 * once, as sshd's MaxSessions allows; more wait for a free one.
 */
import type { Client } from "ssh2";
import { SidecarError } from "../../errors.js";

export class SessionSlots {
  private count = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly target: string,
    private readonly max: number,
    /** the client once connected, waiting through a reconnect */
    private readonly ready: (timeoutMs: number) => Promise<Client>,
    /** the connection's generation now */
    private readonly generation: () => number,
  ) {}

  get inUse(): number {
    return this.count;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** The connection went down, and its channels with it. */
  dropAll(): void {
    this.count = 0;
  }

  /** The link ended: whoever waits for a slot stops waiting (and finds it ended). */
  wakeAll(): void {
    for (const w of this.waiting.splice(0)) w();
  }

  /** Take a session slot; `release` gives it back. Callers use open(). */
  private async take(
    timeoutMs: number,
  ): Promise<{ client: Client; release: () => void; generation: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const client = await this.ready(Math.max(1, deadline - Date.now()));
      if (this.count < this.max) {
        this.count++;
        const gen = this.generation();
        let released = false;
        return {
          client,
          generation: gen,
          release: () => {
            if (released) return;
            released = true;
            if (gen === this.generation()) this.count = Math.max(0, this.count - 1);
            this.waiting.shift()?.();
          },
        };
      }
      await new Promise<void>((resolve, reject) => {
        const wake = (): void => {
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(
          () => {
            const i = this.waiting.indexOf(wake);
            if (i >= 0) this.waiting.splice(i, 1);
            reject(
              new SidecarError(
                "SSH_EXEC",
                `No free session channel on \`${this.target}\` after ${timeoutMs} ms: ${this.max} are in use (sshd's MaxSessions)`,
              ),
            );
          },
          Math.max(1, deadline - Date.now()),
        );
        this.waiting.push(wake);
      });
    }
  }

  /**
   * A session slot with a channel opened in it by `open`. sshd may still refuse the channel
   * ("Channel open failure: open failed") although this side counts a free slot: sshd frees a
   * closed session only when it next collects dead channels, so an open sent right behind a
   * close can find it still full (this side at its limit; seen once in CI as a staging test's
   * STAGING_FAILED), and an admin may set MaxSessions below ours. That refusal is waited out
   * (backing off) until `timeoutMs`, then named; any other failure is thrown at once.
   */
  async open<T>(
    timeoutMs: number,
    open: (client: Client) => Promise<T>,
  ): Promise<{ value: T; release: () => void; generation: number }> {
    const deadline = Date.now() + timeoutMs;
    for (let delay = 25; ; delay = Math.min(delay * 2, 1000)) {
      const { client, release, generation } = await this.take(Math.max(1, deadline - Date.now()));
      try {
        return { value: await open(client), release, generation };
      } catch (err) {
        release();
        if (!isChannelRefused(err)) throw err;
        if (Date.now() >= deadline) {
          throw new SidecarError(
            "SSH_EXEC",
            `\`${this.target}\` refused a new session channel for ${timeoutMs} ms (${this.count} open from here): sshd's MaxSessions is reached, by sessions it has not freed yet after they closed or by a server MaxSessions lower than this side's ${this.max} while long-running commands (worker blocks, relays, watchdogs) hold the rest`,
            { cause: err, data: { target: this.target, transient: true } },
          );
        }
        await new Promise((r) =>
          setTimeout(r, Math.min(delay, Math.max(1, deadline - Date.now()))),
        );
      }
    }
  }
}

/** ssh2's error for a channel the server refused to open (SSH_MSG_CHANNEL_OPEN_FAILURE). */
export function isChannelRefused(err: unknown): boolean {
  const e = (err as { cause?: unknown })?.cause ?? err;
  return (
    e instanceof Error &&
    /Channel open failure/i.test(e.message) &&
    typeof (e as { reason?: unknown }).reason === "number"
  );
}
