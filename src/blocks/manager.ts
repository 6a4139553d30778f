/**
 * Worker blocks started on a pool's head node (SidecarLocalProvider): each is a shell script run
 * in its own process group over the pool's SSH connection, tracked until it exits and killed as
 * a whole group on cancel or when its owner goes away.
 *
 * A dropped connection does not end a block: on a pool it writes to files (block.sh `run`), so
 * its processes live on (workers reconnect to the interchange once the tunnel is back). The block
 * stays `running`, detached from its channel, and is looked for over new connections (detached.ts)
 * until its processes are gone; cancel signals the group over a new connection (cancel.ts), and
 * the block ends with the exit status its shell left in a file on the pool.
 */
import { randomBytes } from "node:crypto";
import { SidecarError } from "../errors.js";
import type { EventBus } from "../events.js";
import type { HostProcess, Hosts } from "../ssh/host.js";
import { isLocalTarget } from "../ssh/target.js";
import type { Logger } from "../util/logger.js";
import { shellQuote } from "../util/shell-quote.js";
import { within } from "../util/timeout.js";
import {
  addToTail,
  type Block,
  type BlockEnv,
  type BlockHooks,
  type BlockInfo,
  capture,
  type StartBlock,
} from "./block.js";
import { cancelRunning } from "./cancel.js";
import { BLOCK_MARK, remoteDir, removeCommand, survivingCommand } from "./commands.js";
import { lost } from "./detached.js";

/** ended blocks kept for status queries */
const KEEP_ENDED = 1000;

export class BlockManager {
  private readonly blocks = new Map<string, Block>();
  /** removals of ended blocks' files on their pools, awaited by close() */
  private readonly cleanups = new Set<Promise<unknown>>();
  private readonly hooks: BlockHooks;

  constructor(
    private readonly hosts: Hosts,
    private readonly log: Logger,
    private readonly events: EventBus,
    /** see BlockEnv */
    private readonly ownerEnv?: BlockEnv,
  ) {
    this.hooks = { log, events, ended: (...a) => this.ended(...a) };
  }

  async start(req: StartBlock): Promise<BlockInfo> {
    const extra = isLocalTarget(req.target)
      ? {}
      : ((await this.ownerEnv?.(req.owner, req.target)) ?? {});
    const lease = await this.hosts.acquire(req.target, `executors:block:${req.owner}`);
    const id = `blk-${randomBytes(5).toString("hex")}`;
    const cd =
      req.cwd === undefined ? "" : `mkdir -p ${remoteDir(req.cwd)} && cd ${remoteDir(req.cwd)} && `;
    let proc: HostProcess;
    // the login shell's lines: kept until the channel is captured
    const early: Buffer[] = [];
    let startup: (b: Buffer) => void = (b) => early.push(b);
    try {
      // the marker tells this block's processes from a later group that reuses its id
      const run = lease.isLocal
        ? `exec bash -c ${shellQuote(req.script)}`
        : survivingCommand(id, req.script);
      proc = await lease.spawn(`${cd}${run}`, {
        env: { ...extra, [BLOCK_MARK]: id },
        onStartup: (b) => startup(b),
      });
    } catch (err) {
      lease.release();
      throw new SidecarError(
        "PROVIDER_FAILED",
        `Executor \`${req.label}\`: cannot start a worker block on \`${req.target}\`: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const info: BlockInfo = {
      id,
      target: req.target,
      owner: req.owner,
      label: req.label,
      state: "running",
      pgid: null,
      exit_code: null,
      signal: null,
      started_at: Date.now(),
      ended_at: null,
      tail: "",
    };
    const block: Block = {
      info,
      proc,
      lease,
      cancelling: false,
      files: [],
      paths: { stdout: req.stdout_path, stderr: req.stderr_path },
      seen: { stdout: 0, stderr: 0 },
    };
    this.blocks.set(id, block);
    startup = capture(block, proc);
    for (const b of early.splice(0)) startup(b);
    proc.stdin.end();
    info.pgid = await proc.pgid.catch(() => null);
    void proc.exited.then(
      (r) =>
        r.lost
          ? lost(
              block,
              new SidecarError("SSH_CONNECT", `The connection to \`${req.target}\` dropped`),
              this.hooks,
            )
          : this.ended(block, r.exitCode, r.signal),
      (err: unknown) => lost(block, err, this.hooks),
    );
    this.events.emit("executors.block", {
      id,
      label: req.label,
      target: req.target,
      state: "running",
      pgid: info.pgid,
    });
    this.log.info(
      { id, label: req.label, target: req.target, pgid: info.pgid },
      "worker block started",
    );
    return { ...info };
  }

  private ended(
    block: Block,
    exitCode: number | null,
    signal: string | null,
    error?: string,
  ): void {
    const info = block.info;
    if (info.ended_at !== null) return;
    if (block.detached) {
      clearInterval(block.detached.timer);
      // its tails end with the block's shell; one still running here is not left on the pool
      void block.detached.follower?.kill("SIGTERM").catch(() => undefined);
    }
    info.exit_code = exitCode;
    info.signal = signal;
    info.ended_at = Date.now();
    info.state = block.cancelling ? "cancelled" : exitCode === 0 ? "completed" : "failed";
    if (error) addToTail(info, error);
    for (const f of block.files) f.end();
    if (!block.lease.isLocal) {
      // its shell leaves its output and status files for this sidecar (block.sh `run`)
      const removed = within(
        block.lease.exec(removeCommand(info.id), { timeoutMs: 10_000 }).catch(() => undefined),
        10_000,
        undefined,
        { unref: true },
      ).finally(() => {
        block.lease.release();
        this.cleanups.delete(removed);
      });
      this.cleanups.add(removed);
    } else {
      block.lease.release();
    }
    this.events.emit("executors.block", {
      id: info.id,
      label: info.label,
      target: info.target,
      state: info.state,
      exit_code: exitCode,
      signal,
    });
    this.log.info({ id: info.id, state: info.state, exitCode, signal }, "worker block ended");
    this.trim();
  }

  private trim(): void {
    const ended = [...this.blocks.values()].filter((b) => b.info.ended_at !== null);
    for (const b of ended.slice(0, Math.max(0, ended.length - KEEP_ENDED)))
      this.blocks.delete(b.info.id);
  }

  status(ids: string[]): BlockInfo[] {
    return ids.map((id) => {
      const b = this.blocks.get(id);
      if (!b)
        return {
          id,
          target: "",
          owner: "",
          label: "",
          state: "failed" as const,
          pgid: null,
          exit_code: null,
          signal: null,
          started_at: 0,
          ended_at: 0,
          tail: "unknown block (the sidecar may have restarted)",
        };
      return { ...b.info };
    });
  }

  /** SIGTERM the blocks' process groups, SIGKILL after `graceMs`; resolves when they are gone. */
  async cancel(ids: string[], graceMs = 5000): Promise<boolean[]> {
    return await Promise.all(
      ids.map(async (id) => {
        const b = this.blocks.get(id);
        if (!b) return false;
        if (b.info.ended_at !== null) return true;
        b.cancelling = true;
        b.cancelGraceMs = graceMs;
        return await cancelRunning(b, graceMs, this.hosts, this.hooks);
      }),
    );
  }

  list(owner?: string): BlockInfo[] {
    return [...this.blocks.values()]
      .filter((b) => owner === undefined || b.info.owner === owner)
      .map((b) => ({ ...b.info }));
  }

  /** Cancel every running block of an owner. */
  async release(owner: string): Promise<number> {
    const ids = this.list(owner)
      .filter((b) => b.state === "running")
      .map((b) => b.id);
    await this.cancel(ids);
    return ids.length;
  }

  running(): number {
    return [...this.blocks.values()].filter((b) => b.info.state === "running").length;
  }

  async close(): Promise<void> {
    const ids = [...this.blocks.values()]
      .filter((b) => b.info.state === "running")
      .map((b) => b.info.id);
    await this.cancel(ids, 2000);
    // bounded: a pool that cannot be reached keeps the files (its next block's shell sweeps them)
    await within(Promise.allSettled([...this.cleanups]), 5000, undefined, { unref: true });
  }
}
