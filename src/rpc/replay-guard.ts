/**
 * Rejects a signature seen before, and messages outside a time window, with bounded memory.
 * When the memory is full the oldest signatures are forgotten and the floor rises to their
 * timestamps: a message older than the floor is refused as stale, so forgetting never lets a
 * replay through.
 */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();
  private floor = 0;

  constructor(
    private readonly windowMs = 5 * 60_000,
    private readonly maxEntries = 200_000,
  ) {}

  /** Returns why a message must be dropped, or undefined when it is fresh. */
  check(signature: string, ts: number, now = Date.now()): "replay" | "stale" | undefined {
    if (Math.abs(now - ts) > this.windowMs || ts <= this.floor) return "stale";
    if (this.seen.has(signature)) return "replay";
    this.seen.set(signature, ts);
    if (this.seen.size > this.maxEntries) this.prune(now);
    return undefined;
  }

  get size(): number {
    return this.seen.size;
  }

  private prune(now: number): void {
    const target = Math.floor(this.maxEntries * 0.9);
    for (const [sig, ts] of this.seen) {
      const expired = now - ts > this.windowMs;
      if (!expired && this.seen.size <= target) break;
      this.seen.delete(sig); // a Map iterates in insertion order: oldest first
      if (!expired) this.floor = Math.max(this.floor, ts);
    }
  }
}
