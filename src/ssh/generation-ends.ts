/**
 * Who waits for a connection generation to end. Callbacks, not one promise per generation: a
 * promise cannot forget a reaction, so every channel that waited on it stayed reachable (with
 * its buffers) for as long as the connection lived; the soak found ~1,400 such channels per
 * 5,000 tasks.
 */
export class GenerationEnds {
  private readonly waiting = new Map<number, Set<() => void>>();

  /**
   * Call `cb` once generation `gen` ends; at once (on the next tick) if `isCurrent` says it
   * already has. Returns what removes `cb` again, for whoever stops caring first.
   */
  on(gen: number, isCurrent: boolean, cb: () => void): () => void {
    if (!isCurrent) {
      const t = setImmediate(cb);
      return () => clearImmediate(t);
    }
    let set = this.waiting.get(gen);
    if (!set) {
      set = new Set();
      this.waiting.set(gen, set);
    }
    set.add(cb);
    return () => {
      set.delete(cb);
      if (set.size === 0 && this.waiting.get(gen) === set) this.waiting.delete(gen);
    };
  }

  /** A promise for a one-off wait (one reaction, dropped with the generation). */
  wait(gen: number, isCurrent: boolean): Promise<void> {
    return new Promise((resolve) => this.on(gen, isCurrent, resolve));
  }

  end(gen: number): void {
    const set = this.waiting.get(gen);
    this.waiting.delete(gen);
    for (const cb of set ?? []) cb();
  }

  /** how many callbacks wait, over all generations (for tests and leaks) */
  get size(): number {
    let n = 0;
    for (const s of this.waiting.values()) n += s.size;
    return n;
  }
}
