/** Pools managed by a platform: a resolver turns a pool name into the head node's address. */
export interface ResolvedPool {
  hostIp: string;
  hostUser?: string;
}

export interface ResolveOptions {
  signal?: AbortSignal;
  /** a line for the user while waiting ("pool x is off; waiting") */
  onProgress?: (message: string) => void;
}

export interface PoolResolver {
  readonly name: string;
  /** wait until the pool is usable and return its head node's address */
  resolve(pool: string, opts?: ResolveOptions): Promise<ResolvedPool>;
}
