/**
 * Looking at and signalling a block's process group: on a pool over a lease (block.sh `look` and
 * `signal`, which find the block's processes by their marker), here with process.kill. Every
 * wait is bounded: a reconnecting lease would otherwise wait for the pool.
 */
import type { HostLease } from "../ssh/host.js";
import { sleep, within } from "../util/timeout.js";
import { type Block, parseBlockStatus } from "./block.js";
import { lookCommand, signalCommand } from "./commands.js";

/** What a look found: alive, or gone and how it ended (from the status file its shell left). */
export type Look = { alive: boolean; status?: ReturnType<typeof parseBlockStatus> };

/** Looking at and signalling a block's process group: over a lease on a pool, directly here. */
export interface GroupOps {
  /** whether a process of the group is left; undefined when that cannot be told within `waitMs` */
  alive(waitMs: number): Promise<boolean | undefined>;
  signal(signal: "TERM" | "KILL", waitMs: number): Promise<void>;
}

/**
 * Whether a block's group (on a pool) still has processes and, once gone, how it ended;
 * undefined when the pool cannot be reached within `waitMs`, or when the connection reached
 * another host than the block's (`elsewhere`: look again later).
 */
export async function look(
  block: Block,
  waitMs = 15_000,
  lease = block.lease,
): Promise<Look | undefined> {
  const ask = lease.exec(lookCommand(block.info.id, block.info.pgid!), { timeoutMs: waitMs }).then(
    (r) => {
      const [first, second] = r.stdout.split("\n");
      if (r.exitCode !== 0 || (first !== "alive" && first !== "gone")) return undefined;
      return first === "alive"
        ? { alive: true }
        : { alive: false, status: parseBlockStatus(second ?? "") };
    },
    () => undefined,
  );
  return await within(ask, waitMs, undefined, { unref: true });
}

/** Signal a block's group on its pool, only while a process of the block is still there. */
export async function signalGroup(
  block: Block,
  signal: "TERM" | "KILL",
  waitMs: number,
  lease = block.lease,
): Promise<void> {
  const command = signalCommand(block.info.id, block.info.pgid!, signal);
  await within(
    lease.exec(command, { timeoutMs: waitMs }).catch(() => undefined),
    waitMs,
    undefined,
    { unref: true },
  );
}

/** How to look at and signal a block's group: here with process.kill, on a pool over `lease`. */
export function groupOps(block: Block, lease: HostLease = block.lease): GroupOps {
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
    alive: async (waitMs) => (await look(block, waitMs, lease))?.alive,
    signal: (signal, waitMs) => signalGroup(block, signal, waitMs, lease),
  };
}

/**
 * Signal a block's group until none of it is left: TERM (unless already sent), KILL after
 * `graceMs`. Bounded (about 2 x grace + 10 s) when it cannot be looked at; false then.
 */
export async function signalUntilGone(
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
      await sleep(250, { unref: true });
    }
  };
  if (!termSent) await ops.signal("TERM", step);
  if (await until(graceMs)) return true;
  await ops.signal("KILL", step);
  return await until(Math.max(graceMs, 2000));
}
