/**
 * Session slots of one connection, counted as the ssh2 transport counts them (src/ssh/connection.ts):
 * at most `max` sessions (sshd's MaxSessions, 10 by default) open from here, more wait for one
 * to be released; a session sshd still refuses ("open failed": it frees closed sessions late,
 * or its MaxSessions is lower) is tried again with backoff until the deadline, then named.
 */
import { SidecarError } from "../../errors.js";
import { sleep } from "../../util/timeout.js";

export interface Slot {
  generation: number;
  release: () => void;
}

export class SessionSlots {
  sessions = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly target: string,
    private readonly max: number,
    /** resolves with the connection's generation once it is ready, waiting up to `ms` */
    private readonly ready: (ms: number) => Promise<number>,
    private readonly generation: () => number,
  ) {}

  get queued(): number {
    return this.waiting.length;
  }

  /** the connection was lost: its sessions are gone */
  reset(): void {
    this.sessions = 0;
  }

  /** wake every waiter (the connection closed or failed; they see it in ready()) */
  wakeAll(): void {
    for (const w of this.waiting.splice(0)) w();
  }

  /** Take a slot, waiting for the connection and for a free slot up to `timeoutMs`. */
  async take(timeoutMs: number): Promise<Slot> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const gen = await this.ready(Math.max(1, deadline - Date.now()));
      if (this.sessions < this.max) {
        this.sessions++;
        let released = false;
        return {
          generation: gen,
          release: () => {
            if (released) return;
            released = true;
            if (gen === this.generation()) this.sessions = Math.max(0, this.sessions - 1);
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
   * A slot with a session opened in it by `open`. A refusal (`isRefused`) is waited out with
   * backoff until `timeoutMs`, then named; any other failure is thrown at once.
   */
  async open<T>(
    timeoutMs: number,
    open: (slot: Slot, remainingMs: number) => Promise<T>,
    isRefused: (err: unknown) => boolean,
  ): Promise<{ value: T; slot: Slot }> {
    const deadline = Date.now() + timeoutMs;
    for (let delay = 25; ; delay = Math.min(delay * 2, 1000)) {
      const slot = await this.take(Math.max(1, deadline - Date.now()));
      try {
        return { value: await open(slot, Math.max(1, deadline - Date.now())), slot };
      } catch (err) {
        slot.release();
        if (!isRefused(err)) throw err;
        if (Date.now() >= deadline) {
          throw new SidecarError(
            "SSH_EXEC",
            `\`${this.target}\` refused a new session channel for ${timeoutMs} ms (${this.sessions} open from here): sshd's MaxSessions is reached, by sessions it has not freed yet after they closed or by a server MaxSessions lower than this side's ${this.max} while long-running commands (worker blocks, relays, watchdogs) hold the rest`,
            { cause: err, data: { target: this.target, transient: true } },
          );
        }
        await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
      }
    }
  }
}
