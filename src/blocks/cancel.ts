/**
 * Cancelling a block: SIGTERM its process group, SIGKILL after a grace period, until none of it
 * is left; over a new connection when its own dropped, and again from the looks at a detached
 * block when the pool could not be reached for the cancel's signals.
 */
import type { HostLease, Hosts } from "../ssh/host.js";
import { within } from "../util/timeout.js";
import type { Block, BlockHooks } from "./block.js";
import { groupOps, signalGroup, signalUntilGone } from "./group.js";

/**
 * Cancel a running block (cancelling is set). Its own channel gets TERM, then KILL after
 * `graceMs`; once its shell is gone (on a pool it ends at the TERM without waiting for its
 * script), a process of the group that ignores TERM, or takes its time, is waited for and
 * killed over a lease held for that. True when the whole group is seen gone.
 */
export async function cancelRunning(
  b: Block,
  graceMs: number,
  hosts: Hosts,
  hooks: BlockHooks,
): Promise<boolean> {
  if (b.detached) return await cancelDetached(b, graceMs, hooks);
  // held until the whole group is seen gone: the block's own lease goes when its shell ends
  let lease: HostLease | undefined;
  if (b.info.pgid !== null) {
    lease = b.lease.isLocal
      ? b.lease
      : await hosts
          .acquire(b.info.target, `executors:cancel:${b.info.owner}`)
          .catch(() => undefined);
  }
  try {
    await b.proc.kill("SIGTERM").catch(() => undefined);
    const exited = b.proc.exited.then(
      () => true,
      () => true,
    );
    if (!(await within(exited, graceMs, false, { unref: true }))) {
      await b.proc.kill("SIGKILL").catch(() => undefined);
      await within(exited, graceMs, false, { unref: true });
    }
    // the connection dropped meanwhile: the group may not have had the signals
    if (b.detached) return await cancelDetached(b, graceMs, hooks);
    if (!lease) return true;
    return await signalUntilGone(groupOps(b, lease), graceMs, true);
  } finally {
    if (lease && lease !== b.lease) lease.release();
  }
}

/**
 * Cancel a detached block: signal its group over a new connection until it is gone. Bounded
 * when the pool cannot be reached; the block then stays `running`, marked cancelling, its
 * signals are sent again by the looks that find it alive (resignal), and it ends as cancelled
 * when a look finds its group gone.
 */
async function cancelDetached(block: Block, graceMs: number, hooks: BlockHooks): Promise<boolean> {
  block.signalling = true;
  try {
    const gone = await signalUntilGone(groupOps(block), graceMs);
    if (gone) hooks.ended(block, null, "SIGTERM");
    return gone;
  } finally {
    block.signalling = false;
  }
}

/**
 * A cancelled detached block that a look still finds alive: the cancel's signals never reached
 * it (the pool could not be reached for longer than they waited, or the cancel gave up). Sent
 * again by the looks: TERM, then KILL once its grace has passed.
 */
export async function resignal(block: Block, hooks: BlockHooks): Promise<void> {
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
  hooks.log.warn(
    { id: block.info.id, target: block.info.target, pgid: block.info.pgid, signal },
    "cancelled worker block still running: signalling it again",
  );
  await signalGroup(block, signal, 15_000);
}
