/**
 * Worker blocks started on a pool's head node (SidecarLocalProvider): each is a shell script run
 * in its own process group over the pool's SSH connection, tracked until it exits and killed as
 * a whole group on cancel or when its owner goes away.
 *
 * A dropped connection does not end a block: on a pool it writes to files (survivingCommand),
 * so its processes live on (workers reconnect to the interchange once the tunnel is back). The
 * block stays `running`, detached from its channel, and is looked for over new connections
 * every few seconds by its processes' marker (blockAliveFunction) until they are gone; a new
 * channel follows its files meanwhile, cancel signals the group over a new connection, and the
 * block ends with the exit status its shell left in a file on the pool.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { SidecarError } from "../errors.js";
import type { EventBus } from "../events.js";
import { shellQuote, type HostLease, type Hosts, type HostProcess } from "../ssh/host.js";
import { killGroupCommand } from "../ssh/remote-command.js";
import { isLocalTarget } from "../ssh/target.js";
import type { Logger } from "../util/logger.js";

export type BlockState = "running" | "completed" | "failed" | "cancelled";

export interface BlockInfo {
  id: string;
  target: string;
  owner: string;
  label: string;
  state: BlockState;
  pgid: number | null;
  exit_code: number | null;
  signal: string | null;
  started_at: number;
  ended_at: number | null;
  /** the last lines of stderr (and stdout), for error messages */
  tail: string;
}

interface Block {
  info: BlockInfo;
  proc: HostProcess;
  lease: HostLease;
  cancelling: boolean;
  files: WriteStream[];
  /** where its output goes here (Parsl reads them) */
  paths: { stdout?: string | undefined; stderr?: string | undefined };
  /** bytes of each stream received so far (a re-attached tail resumes after them) */
  seen: { stdout: number; stderr: number };
  /** its channel went with a dropped connection; the group is watched over new ones, and its
   * output files on the pool are followed again over a new channel (`follower`) */
  detached?: {
    timer: NodeJS.Timeout;
    probing: boolean;
    follower?: HostProcess | undefined;
    nothingToFollow?: boolean;
    restTries: number;
  };
  /** a cancel is signalling its group right now (a look then leaves the signals to it) */
  signalling?: boolean;
  /** the grace its cancel gave it between TERM and KILL */
  cancelGraceMs?: number;
  /** when a look that found it alive after its cancel sent TERM again (resignal) */
  resentAt?: number;
}

/** Looking at and signalling a block's process group: over a lease on a pool, directly here. */
interface GroupOps {
  /** whether a process of the group is left; undefined when that cannot be told within `waitMs` */
  alive(waitMs: number): Promise<boolean | undefined>;
  signal(signal: "TERM" | "KILL", waitMs: number): Promise<void>;
}

const TAIL_BYTES = 4096;
/** how many looks may fail to read the rest of a detached block's output before it ends without */
const REST_TRIES = 3;
/** how often a detached block's process group is looked for */
const DETACHED_PROBE_MS = 5000;
/** environment variable every process of a block inherits: `PARSL_SIDECAR_BLOCK=<id>` */
export const BLOCK_MARK = "PARSL_SIDECAR_BLOCK";

/**
 * POSIX sh setting the block's file names (blockFiles) and defining `alive`: true while a
 * process of the block lives on its host. Where /proc and `grep -z` exist (Linux), that is a
 * process whose environment carries the block's marker, so a process group that reuses the
 * block's id after a reboot is never taken for it (nor signalled); elsewhere, any process in
 * the group. And `elsewhere`: true when the block's shell
 * recorded another host name (`uname -n`) than this one, as when a pool's name leads to one of
 * several login nodes sharing a home directory: its processes cannot be seen or signalled from
 * here, so a look must not take them for gone.
 */
export function blockAliveFunction(id: string, pgid: number): string {
  if (!Number.isInteger(pgid) || pgid <= 1)
    throw new SidecarError("INVALID_ARGUMENT", `Refusing to look for process group \`${pgid}\``);
  return [
    blockFiles(id),
    `elsewhere() {`,
    `  [ -f "$h" ] && [ "$(cat "$h" 2>/dev/null)" != "$(uname -n)" ]`,
    `}`,
    `alive() {`,
    `  if [ -r /proc/self/environ ] && printf 'x\\0' | grep -qzxF x 2>/dev/null; then`,
    `    [ -n "$(grep -lzxF -- ${shellQuote(`${BLOCK_MARK}=${id}`)} /proc/[0-9]*/environ 2>/dev/null | head -n 1)" ]`,
    `  else`,
    `    kill -0 -${pgid} 2>/dev/null`,
    `  fi`,
    `}`,
  ].join("\n");
}
/**
 * sh assignments naming a block's files on its pool: `$d` (their directory), `$o` and `$e` (its
 * output), `$r` (its exit status, `<status> <signal name or ->`, left by its shell for a
 * sidecar that was not there to see it end) and `$h` (the host it runs on, `uname -n`)
 */
function blockFiles(id: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(id))
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected a block id of letters, digits, - and _, got \`${id}\``,
    );
  return `d="$HOME/.parsl-sidecar/blocks"; o="$d/${id}.out"; e="$d/${id}.err"; r="$d/${id}.rc"; h="$d/${id}.host"`;
}

/**
 * sh printing what a look finds of a detached block: `elsewhere` (another host; nothing can be
 * told from here), `alive`, or `gone` followed by the status line its shell left, if any.
 */
export function blockLookScript(id: string, pgid: number): string {
  return `${blockAliveFunction(id, pgid)}\nif elsewhere; then echo elsewhere; elif alive; then echo alive; else echo gone; cat "$r" 2>/dev/null; fi; exit 0`;
}

/** How a block ended, from the status file its shell left (`<status> <signal name or ->`). */
export function parseBlockStatus(
  line: string,
): { exitCode: number | null; signal: string | null } | undefined {
  const m = /^(\d{1,3}) ([A-Z][A-Z0-9+-]*|-)$/.exec(line.trim());
  if (!m) return undefined;
  return m[2] === "-"
    ? { exitCode: Number(m[1]), signal: null }
    : { exitCode: null, signal: `SIG${m[2]}` };
}

/**
 * Called before a block of `owner` starts on the pool `target`; resolves with environment for
 * its processes. The composition root gives a job's blocks the job's marker, and first makes sure
 * the job's watchdog runs on that pool, so a block never runs there without something that ends
 * it with the job (also when this sidecar dies the moment the block started).
 */
export type BlockEnv = (owner: string, target: string) => Promise<Record<string, string>>;

/** ended blocks kept for status queries */
const KEEP_ENDED = 1000;

export interface StartBlock {
  target: string;
  /** a bash script (Parsl's launcher output, after worker_init) */
  script: string;
  owner: string;
  label: string;
  /** directory on the pool to run in (created) */
  cwd?: string | undefined;
  /** files on this machine receiving the block's output (Parsl's JobStatus reads them) */
  stdout_path?: string | undefined;
  stderr_path?: string | undefined;
}

export class BlockManager {
  private readonly blocks = new Map<string, Block>();
  /** removals of ended blocks' files on their pools, awaited by close() */
  private readonly cleanups = new Set<Promise<unknown>>();

  constructor(
    private readonly hosts: Hosts,
    private readonly log: Logger,
    private readonly events: EventBus,
    /** see BlockEnv */
    private readonly ownerEnv?: BlockEnv,
  ) {}

  async start(req: StartBlock): Promise<BlockInfo> {
    const extra = isLocalTarget(req.target)
      ? {}
      : ((await this.ownerEnv?.(req.owner, req.target)) ?? {});
    const lease = await this.hosts.acquire(req.target, `executors:block:${req.owner}`);
    const id = `blk-${randomBytes(5).toString("hex")}`;
    const cd =
      req.cwd === undefined ? "" : `mkdir -p ${remoteDir(req.cwd)} && cd ${remoteDir(req.cwd)} && `;
    let proc: HostProcess;
    try {
      // the marker tells this block's processes from a later group that reuses its id
      const run = lease.isLocal
        ? `exec bash -c ${shellQuote(req.script)}`
        : survivingCommand(id, req.script);
      proc = await lease.spawn(`${cd}${run}`, { env: { ...extra, [BLOCK_MARK]: id } });
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
    this.capture(block, proc);
    proc.stdin.end();
    info.pgid = await proc.pgid.catch(() => null);
    void proc.exited.then(
      (r) =>
        r.lost
          ? this.lost(
              block,
              new SidecarError("SSH_CONNECT", `The connection to \`${req.target}\` dropped`),
            )
          : this.ended(block, r.exitCode, r.signal),
      (err: unknown) => this.lost(block, err),
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

  /** Pass a channel's output to the block's files here and its tail, counting the bytes. */
  private capture(block: Block, proc: HostProcess): void {
    for (const which of ["stdout", "stderr"] as const) {
      const path = block.paths[which];
      const file = path ? createWriteStream(path, { flags: "a", mode: 0o600 }) : undefined;
      if (file) {
        file.on("error", () => undefined);
        block.files.push(file);
      }
      proc[which].on("data", (chunk: Buffer) => {
        block.seen[which] += chunk.length;
        file?.write(chunk);
        block.info.tail = (block.info.tail + chunk.toString("utf8")).slice(-TAIL_BYTES);
      });
    }
  }

  /**
   * Follow a detached block's output files on the pool again (survivingCommand writes them),
   * from the bytes already received, until its shell ends; the next look starts another if this
   * channel drops too. Nothing to follow when the block wrote straight to its old channel.
   */
  private async follow(block: Block): Promise<void> {
    const d = block.detached;
    if (!d || d.follower || d.nothingToFollow || block.info.ended_at !== null) return;
    const { id, pgid } = block.info;
    const script = [
      blockAliveFunction(id, pgid!),
      // no files: it wrote to its old channel, there is nothing to follow
      `[ -f "$o" ] && [ -f "$e" ] || exit 3`,
      // another host, or no shell left for --pid to follow: the next look tells which
      `elsewhere && exit 4`,
      `kill -0 ${pgid!} 2>/dev/null || exit 4`,
      `tail -s 0.2 -c +${block.seen.stdout + 1} -f --pid=${pgid!} "$o" &`,
      `tail -s 0.2 -c +${block.seen.stderr + 1} -f --pid=${pgid!} "$e" >&2 &`,
      `wait`,
    ].join("\n");
    let proc: HostProcess;
    try {
      proc = await block.lease.spawn(script);
    } catch {
      return; // not reachable yet: the next look tries again
    }
    if (block.info.ended_at !== null || !block.detached) {
      void proc.kill("SIGTERM").catch(() => undefined);
      return;
    }
    d.follower = proc;
    proc.stdin.end();
    this.capture(block, proc);
    void proc.exited.then((r) => {
      if (d.follower === proc) d.follower = undefined;
      if (r.exitCode === 3) d.nothingToFollow = true;
      else if (!r.lost) void this.probe(block); // its shell ended: look now rather than in 5 s
    });
  }

  /**
   * A detached block's shell ended: deliver what it wrote that no channel brought here (its
   * files stay until ended() removes them), after the follower, if any, has passed on its part.
   */
  private async readRest(block: Block): Promise<boolean> {
    const d = block.detached;
    if (!d) return true;
    if (d.follower) await within(d.follower.exited, 10_000, undefined);
    if (d.nothingToFollow) return true;
    const script = [
      blockFiles(block.info.id),
      `if [ -f "$o" ]; then tail -c +${block.seen.stdout + 1} "$o"; fi`,
      `if [ -f "$e" ]; then tail -c +${block.seen.stderr + 1} "$e" >&2; fi`,
      `exit 0`,
    ].join("\n");
    let proc: HostProcess;
    try {
      proc = await block.lease.spawn(script);
    } catch {
      // the pool went away again: the next look tries again, a few times
      return ++d.restTries >= REST_TRIES;
    }
    proc.stdin.end();
    this.capture(block, proc);
    const r = await within(proc.exited, 120_000, undefined);
    return !r?.lost || ++d.restTries >= REST_TRIES;
  }

  /** The block's channel failed: detach and watch it when the connection dropped, else end it. */
  private lost(block: Block, err: unknown): void {
    const e = err as SidecarError;
    const pgid = block.info.pgid;
    // (also while it is being cancelled: its group may not have had the signal yet, and is
    // watched and signalled over new connections until it is gone)
    if (e?.code !== "SSH_CONNECT" || pgid === null || block.info.ended_at !== null) {
      return this.ended(block, null, null, (err as Error)?.message ?? String(err));
    }
    const note = `[parsl-sidecar: the connection to ${block.info.target} dropped; the block's process group ${pgid} lives on there and is watched over new connections]`;
    block.info.tail = `${block.info.tail}\n${note}`.slice(-TAIL_BYTES);
    for (const f of block.files) f.end();
    block.files = [];
    const detached = {
      timer: setInterval(() => void this.probe(block), DETACHED_PROBE_MS),
      probing: false,
      restTries: 0,
    };
    detached.timer.unref();
    block.detached = detached;
    this.log.warn(
      { id: block.info.id, target: block.info.target, pgid },
      "worker block detached: its connection dropped",
    );
    // no pgid: the jobs service already holds the group (it adds one on a running event with a pgid)
    this.events.emit("executors.block", {
      id: block.info.id,
      label: block.info.label,
      target: block.info.target,
      state: "running",
      detached: true,
    });
  }

  /**
   * How to look at and signal a block's group: here with process.kill, on a pool over `lease`
   * (its alive() is undefined when the pool cannot be reached within `waitMs`: a reconnecting
   * lease would otherwise wait for it).
   */
  private groupOps(block: Block, lease: HostLease = block.lease): GroupOps {
    const pgid = block.info.pgid!;
    if (lease.isLocal) {
      return {
        alive: async () => {
          try {
            process.kill(-pgid, 0);
            return true;
          } catch (err) {
            return (err as NodeJS.ErrnoException).code === "EPERM";
          }
        },
        // the local HostProcess signals its whole group
        signal: (signal) => block.proc.kill(`SIG${signal}`).catch(() => undefined),
      };
    }
    return {
      alive: async (waitMs) => (await this.look(block, waitMs, lease))?.alive,
      signal: (signal, waitMs) => this.signalGroup(block, signal, waitMs, lease),
    };
  }

  /**
   * Whether a detached block's group still has processes and, once gone, how it ended (from the
   * status file its shell left); undefined when the pool cannot be reached within `waitMs`.
   */
  private async look(
    block: Block,
    waitMs = 15_000,
    lease = block.lease,
  ): Promise<{ alive: boolean; status?: ReturnType<typeof parseBlockStatus> } | undefined> {
    const script = blockLookScript(block.info.id, block.info.pgid!);
    const ask = lease.exec(script, { timeoutMs: waitMs }).then(
      (r) => {
        const [first, second] = r.stdout.split("\n");
        // `elsewhere`: this connection reached another host than the block's; look again later
        if (r.exitCode !== 0 || (first !== "alive" && first !== "gone")) return undefined;
        return first === "alive"
          ? { alive: true }
          : { alive: false, status: parseBlockStatus(second ?? "") };
      },
      () => undefined,
    );
    return await within(ask, waitMs, undefined);
  }

  private async signalGroup(
    block: Block,
    signal: "TERM" | "KILL",
    waitMs: number,
    lease = block.lease,
  ): Promise<void> {
    // only while a process of this block is still there (see blockAliveFunction)
    const script = `${blockAliveFunction(block.info.id, block.info.pgid!)}\nif ! elsewhere && alive; then ${killGroupCommand(block.info.pgid!, signal)}; fi; exit 0`;
    await within(
      lease.exec(script, { timeoutMs: waitMs }).catch(() => undefined),
      waitMs,
      undefined,
    );
  }

  private async probe(block: Block): Promise<void> {
    const d = block.detached;
    if (!d || d.probing || block.info.ended_at !== null) return;
    d.probing = true;
    try {
      // also after a cancel that could not reach the pool: the block ends (cancelled) once gone
      const seen = await this.look(block);
      if (seen?.alive === false) {
        if (!(await this.readRest(block))) return;
        const st = seen.status;
        const how = st
          ? (st.signal ?? `exit status ${st.exitCode}`)
          : "its exit status is unknown (it wrote to its old channel, or was killed with SIGKILL)";
        this.ended(
          block,
          st?.exitCode ?? null,
          st?.signal ?? null,
          `[parsl-sidecar: the block's process group ended while it was detached: ${how}]`,
        );
      } else if (seen?.alive === true) {
        if (block.cancelling) await this.resignal(block);
        else await this.follow(block);
      }
    } finally {
      d.probing = false;
    }
  }

  /**
   * A cancelled detached block that a look still finds alive: the cancel's signals never reached
   * it (the pool could not be reached for longer than they waited, or the cancel gave up). Sent
   * again by the looks: TERM, then KILL once its grace has passed.
   */
  private async resignal(block: Block): Promise<void> {
    if (block.signalling) return;
    const now = Date.now();
    const first = block.resentAt === undefined;
    block.resentAt ??= now;
    const signal = first
      ? "TERM"
      : now - block.resentAt >= (block.cancelGraceMs ?? 5000)
        ? "KILL"
        : undefined;
    if (!signal) return;
    this.log.warn(
      { id: block.info.id, target: block.info.target, pgid: block.info.pgid, signal },
      "cancelled worker block still running: signalling it again",
    );
    await this.signalGroup(block, signal, 15_000);
  }

  /**
   * Signal a block's group until none of it is left: TERM (unless already sent), KILL after
   * `graceMs`. Bounded (about 2 x grace + 10 s) when it cannot be looked at; false then.
   */
  private async signalUntilGone(
    ops: GroupOps,
    graceMs: number,
    termSent = false,
  ): Promise<boolean> {
    const step = Math.max(graceMs, 5000);
    const until = async (ms: number): Promise<boolean> => {
      const deadline = Date.now() + ms;
      for (;;) {
        if ((await ops.alive(Math.max(1000, deadline - Date.now()))) === false) return true;
        if (Date.now() >= deadline) return false;
        await new Promise((r) => setTimeout(r, 250).unref());
      }
    };
    if (!termSent) await ops.signal("TERM", step);
    if (await until(graceMs)) return true;
    await ops.signal("KILL", step);
    return await until(Math.max(graceMs, 2000));
  }

  /**
   * Cancel a detached block: signal its group over a new connection until it is gone. Bounded
   * when the pool cannot be reached; the block then stays `running`, marked cancelling, its
   * signals are sent again by the looks that find it alive (resignal), and it ends as cancelled
   * when a look finds its group gone.
   */
  private async cancelDetached(block: Block, graceMs: number): Promise<boolean> {
    block.signalling = true;
    try {
      const gone = await this.signalUntilGone(this.groupOps(block), graceMs);
      if (gone) this.ended(block, null, "SIGTERM");
      return gone;
    } finally {
      block.signalling = false;
    }
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
    if (error) info.tail = `${info.tail}\n${error}`.slice(-TAIL_BYTES);
    for (const f of block.files) f.end();
    if (!block.lease.isLocal) {
      // its shell leaves its output and status files for this sidecar (survivingCommand)
      const removed = within(
        block.lease
          .exec(`${blockFiles(info.id)}; rm -f "$o" "$e" "$r" "$h"`, { timeoutMs: 10_000 })
          .catch(() => undefined),
        10_000,
        undefined,
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
        if (b.detached) return await this.cancelDetached(b, graceMs);
        // held until the whole group is seen gone: the block's own lease goes when its shell ends
        const lease =
          b.info.pgid === null
            ? undefined
            : b.lease.isLocal
              ? b.lease
              : await this.hosts
                  .acquire(b.info.target, `executors:cancel:${b.info.owner}`)
                  .catch(() => undefined);
        try {
          await b.proc.kill("SIGTERM").catch(() => undefined);
          const gone = await Promise.race([
            b.proc.exited.then(
              () => true,
              () => true,
            ),
            new Promise<boolean>((r) => setTimeout(() => r(false), graceMs).unref()),
          ]);
          if (!gone) {
            await b.proc.kill("SIGKILL").catch(() => undefined);
            await Promise.race([
              b.proc.exited.catch(() => undefined),
              new Promise((r) => setTimeout(r, graceMs).unref()),
            ]);
          }
          // the connection dropped meanwhile: the group may not have had the signals
          if (b.detached) return await this.cancelDetached(b, graceMs);
          // its shell is gone (on a pool, it ends at the TERM without waiting for its script);
          // a process of the group that ignores TERM, or takes its time, is waited for and killed
          if (!lease) return true;
          return await this.signalUntilGone(this.groupOps(b, lease), graceMs, true);
        } finally {
          if (lease && lease !== b.lease) lease.release();
        }
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
    await within(Promise.allSettled([...this.cleanups]), 5000, undefined);
  }
}

/**
 * POSIX sh that runs a block's script so that it outlives its SSH channel. A process writing
 * to a channel whose connection dropped dies of SIGPIPE (a worker's first log line to stderr
 * would end it), so the script writes to files under ~/.parsl-sidecar/blocks (mode 0700) and
 * two `tail -f --pid` forward them to the channel while it lasts; the shell waits for the
 * script, leaves its status in a file and exits with it (or dies of the signal that ended it).
 * The files stay until the sidecar has read what it had not received (a sidecar that lost the
 * channel reads the rest and the status) and removes them; files of blocks that ended over a
 * week ago, which no sidecar came back for, are removed by the next block's shell.
 * Where `tail` has no `--pid` (not GNU coreutils) or the files cannot be made, the script
 * writes to the channel as before.
 */
export function survivingCommand(id: string, script: string): string {
  const s = shellQuote(script);
  return [
    blockFiles(id),
    `if tail --pid=$$ -n 0 /dev/null 2>/dev/null && (umask 077 && mkdir -p "$d" && : > "$o" && : > "$e" && uname -n > "$h") 2>/dev/null; then`,
    ...SWEEP,
    `  trap '(umask 077 && echo "143 TERM" > "$r") 2>/dev/null; exit 143' TERM`,
    `  bash -c ${s} > "$o" 2> "$e" < /dev/null &`,
    `  pid=$!`,
    `  tail -s 0.2 -n +1 -f --pid=$pid "$o" &`,
    `  tail -s 0.2 -n +1 -f --pid=$pid "$e" >&2 &`,
    `  wait $pid; rc=$?`,
    `  wait`,
    `  sig=-; if [ $rc -gt 128 ] && [ $rc -lt 160 ]; then sig=$(kill -l $rc 2>/dev/null) || sig=-; fi`,
    `  (umask 077 && echo "$rc $sig" > "$r") 2>/dev/null`,
    `  trap - TERM`,
    `  if [ $rc -gt 128 ] && [ $rc -lt 160 ]; then kill -$((rc - 128)) $$; fi`,
    `  exit $rc`,
    `fi`,
    `exec bash -c ${s}`,
  ].join("\n");
}

/**
 * sh lines removing what no sidecar came back for: the files of blocks that ended over a week
 * ago (their status file is that old) and, where /proc and `grep -z` tell, of blocks whose
 * output has not changed for a week and of which no process is left (a SIGKILL leaves no
 * status). A quiet block still running keeps its files.
 */
const SWEEP = [
  `  find "$d" -name 'blk-*.rc' -mtime +7 2>/dev/null | while read -r f; do b=\${f%.rc}; rm -f "$f" "$b.out" "$b.err" "$b.host"; done`,
  `  if [ -r /proc/self/environ ] && printf 'x\\0' | grep -qzxF x 2>/dev/null; then`,
  `    find "$d" -name 'blk-*.out' -mtime +7 2>/dev/null | while read -r f; do`,
  `      b=\${f%.out}; [ -e "$b.rc" ] && continue`,
  // only a block of this host: another login node sharing this home may run it
  `      [ "$(cat "$b.host" 2>/dev/null)" = "$(uname -n)" ] || continue`,
  `      grep -qzxF -- "${BLOCK_MARK}=\${b##*/}" /proc/[0-9]*/environ 2>/dev/null || rm -f "$f" "$b.err" "$b.host"`,
  `    done`,
  `  fi`,
];

/** `p`'s value, or `fallback` if it takes longer than `ms` (p goes on, unobserved). */
async function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
    timer.unref();
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A directory for a shell command line; a leading ~/ stays expandable. */
export function remoteDir(path: string): string {
  if (path === "~" || path === "$HOME") return '"$HOME"';
  const m = /^(~|\$HOME)\/(.*)$/.exec(path);
  return m ? `"$HOME"/${shellQuote(m[2]!)}` : shellQuote(path);
}
