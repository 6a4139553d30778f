/**
 * The executors service: completion, preflight and worker blocks, with every tunnel and block
 * recorded under its owner (a job id, or a workflow process) and released with it. An owner
 * that names a pid here is released when that process is gone.
 */
import { SidecarError } from "../errors.js";
import type { EventBus } from "../events.js";
import type { Hosts } from "../ssh/host.js";
import type { Logger } from "../util/logger.js";
import { type BlockEnv, type BlockInfo, BlockManager, type StartBlock } from "../blocks/index.js";
import { completeExecutors, type CompleteOutcome, type CompleteRequest } from "./complete.js";
import { preflightExecutor, type ExecutorPreflight, type LocalVersions } from "./preflight.js";
import type { ResolvedExecutor } from "./resolve.js";
import type { PoolResolver } from "./resolvers/resolver.js";
import type { WorkerTunnels } from "./tunnel-port.js";

export interface ExecutorsServiceDeps {
  hosts: Hosts | undefined;
  tunnels: WorkerTunnels | undefined;
  log: Logger;
  events: EventBus;
  resolver?: (name: string) => PoolResolver;
  /** how often owners' pids are checked @default 3000 */
  sweepMs?: number;
  /** environment for the blocks an owner starts on a pool (see BlockEnv) */
  blockEnv?: BlockEnv | undefined;
}

interface Owner {
  tunnels: Set<string>;
  pid: number | undefined;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export class ExecutorsService {
  readonly blocks: BlockManager | undefined;
  private readonly owners = new Map<string, Owner>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly deps: ExecutorsServiceDeps) {
    this.blocks = deps.hosts
      ? new BlockManager(deps.hosts, deps.log, deps.events, deps.blockEnv)
      : undefined;
    this.sweeper = setInterval(() => void this.sweep(), deps.sweepMs ?? 3000);
    this.sweeper.unref();
  }

  hosts(): Hosts {
    if (!this.deps.hosts)
      throw new SidecarError(
        "INTERNAL",
        "This sidecar was started without the SSH layer; pools cannot be reached",
      );
    return this.deps.hosts;
  }

  blockManager(): BlockManager {
    if (!this.blocks)
      throw new SidecarError(
        "INTERNAL",
        "This sidecar was started without the SSH layer; worker blocks cannot start",
      );
    return this.blocks;
  }

  /** Note an owner (and the pid whose exit releases it). */
  own(owner: string, pid?: number): void {
    const o = this.owners.get(owner) ?? { tunnels: new Set<string>(), pid: undefined };
    if (pid !== undefined) o.pid = pid;
    this.owners.set(owner, o);
  }

  async complete(
    req: Omit<CompleteRequest, "owner">,
    owner: string,
    pid?: number,
  ): Promise<CompleteOutcome> {
    this.own(owner, pid);
    const deps = {
      hosts: this.hosts(),
      tunnels: this.deps.tunnels,
      ...(this.deps.resolver ? { resolver: this.deps.resolver } : {}),
    };
    const res = await completeExecutors({ ...req, owner }, deps);
    // noted again: the sweeper may have released the owner while completion ran
    this.own(owner, pid);
    for (const id of res.opened) this.owners.get(owner)!.tunnels.add(id);
    return res;
  }

  /** Start a worker block for an owner (released with it, or when its pid is gone). */
  async startBlock(req: StartBlock, pid?: number): Promise<BlockInfo> {
    this.own(req.owner, pid);
    const info = await this.blockManager().start(req);
    this.own(req.owner, pid);
    return info;
  }

  async preflight(
    executors: ResolvedExecutor[],
    local: LocalVersions,
  ): Promise<ExecutorPreflight[]> {
    return await Promise.all(
      executors.map((r) => preflightExecutor(this.hosts(), this.deps.tunnels, r, local)),
    );
  }

  /** Close the owner's tunnels and cancel its running blocks. */
  async release(owner: string): Promise<{ tunnels: number; blocks: number }> {
    const o = this.owners.get(owner);
    this.owners.delete(owner);
    let tunnels = 0;
    for (const id of o?.tunnels ?? []) {
      await this.deps.tunnels
        ?.close(id)
        .catch((err: unknown) =>
          this.deps.log.warn({ id, err: (err as Error).message }, "closing a worker tunnel failed"),
        );
      tunnels++;
    }
    const blocks = (await this.blocks?.release(owner)) ?? 0;
    if (tunnels + blocks > 0)
      this.deps.log.info({ owner, tunnels, blocks }, "released an owner's tunnels and blocks");
    return { tunnels, blocks };
  }

  private async sweep(): Promise<void> {
    for (const [owner, o] of [...this.owners]) {
      if (o.pid !== undefined && !pidAlive(o.pid)) {
        this.deps.log.info({ owner, pid: o.pid }, "owner process is gone; releasing what it held");
        await this.release(owner);
      }
    }
  }

  status(): Record<string, unknown> {
    return {
      owners: this.owners.size,
      tunnels: [...this.owners.values()].reduce((n, o) => n + o.tunnels.size, 0),
      blocks_running: this.blocks?.running() ?? 0,
    };
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await this.blocks?.close();
    for (const owner of [...this.owners.keys()]) await this.release(owner);
  }
}
