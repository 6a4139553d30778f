/**
 * A block whose channel went with a dropped connection: its processes live on (on a pool it
 * writes to files, see block.sh `run`), so it stays `running`, detached, and is looked for over
 * new connections every few seconds until its group is gone; a new channel follows its files
 * meanwhile, and it ends with the exit status its shell left in a file on the pool.
 */
import type { SidecarError } from "../errors.js";
import type { HostProcess } from "../ssh/host.js";
import { within } from "../util/timeout.js";
import { addToTail, type Block, type BlockHooks, capture } from "./block.js";
import { resignal } from "./cancel.js";
import { followCommand, restCommand } from "./commands.js";
import { look } from "./group.js";

/** how many looks may fail to read the rest of a detached block's output before it ends without */
const REST_TRIES = 3;
/** how often a detached block's process group is looked for */
const DETACHED_PROBE_MS = 5000;

/** The block's channel failed: detach and watch it when the connection dropped, else end it. */
export function lost(block: Block, err: unknown, hooks: BlockHooks): void {
  const e = err as SidecarError;
  const pgid = block.info.pgid;
  // (also while it is being cancelled: its group may not have had the signal yet, and is
  // watched and signalled over new connections until it is gone)
  if (e?.code !== "SSH_CONNECT" || pgid === null || block.info.ended_at !== null) {
    return hooks.ended(block, null, null, (err as Error)?.message ?? String(err));
  }
  addToTail(
    block.info,
    `[parsl-sidecar: the connection to ${block.info.target} dropped; the block's process group ${pgid} lives on there and is watched over new connections]`,
  );
  for (const f of block.files) f.end();
  block.files = [];
  const detached = {
    timer: setInterval(() => void probe(block, hooks), DETACHED_PROBE_MS),
    probing: false,
    restTries: 0,
  };
  detached.timer.unref();
  block.detached = detached;
  hooks.log.warn(
    { id: block.info.id, target: block.info.target, pgid },
    "worker block detached: its connection dropped",
  );
  // no pgid: the jobs service already holds the group (it adds one on a running event with a pgid)
  hooks.events.emit("executors.block", {
    id: block.info.id,
    label: block.info.label,
    target: block.info.target,
    state: "running",
    detached: true,
  });
}

/** Look for a detached block's group: end the block once it is gone, else follow or resignal. */
async function probe(block: Block, hooks: BlockHooks): Promise<void> {
  const d = block.detached;
  if (!d || d.probing || block.info.ended_at !== null) return;
  d.probing = true;
  try {
    // also after a cancel that could not reach the pool: the block ends (cancelled) once gone
    const seen = await look(block);
    if (seen?.alive === false) {
      if (!(await readRest(block))) return;
      const st = seen.status;
      const how = st
        ? (st.signal ?? `exit status ${st.exitCode}`)
        : "its exit status is unknown (it wrote to its old channel, or was killed with SIGKILL)";
      hooks.ended(
        block,
        st?.exitCode ?? null,
        st?.signal ?? null,
        `[parsl-sidecar: the block's process group ended while it was detached: ${how}]`,
      );
    } else if (seen?.alive === true) {
      if (block.cancelling) await resignal(block, hooks);
      else await follow(block, hooks);
    }
  } finally {
    d.probing = false;
  }
}

/**
 * Follow a detached block's output files on the pool again, from the bytes already received,
 * until its shell ends; the next look starts another if this channel drops too. Nothing to
 * follow when the block wrote straight to its old channel.
 */
async function follow(block: Block, hooks: BlockHooks): Promise<void> {
  const d = block.detached;
  if (!d || d.follower || d.nothingToFollow || block.info.ended_at !== null) return;
  let proc: HostProcess;
  try {
    // the login shell's own lines are dropped: they are not the block's, nor counted in `seen`
    proc = await block.lease.spawn(followCommand(block.info.id, block.info.pgid!, block.seen), {
      onStartup: () => undefined,
    });
  } catch {
    return; // not reachable yet: the next look tries again
  }
  if (block.info.ended_at !== null || !block.detached) {
    void proc.kill("SIGTERM").catch(() => undefined);
    return;
  }
  d.follower = proc;
  proc.stdin.end();
  capture(block, proc);
  void proc.exited.then((r) => {
    if (d.follower === proc) d.follower = undefined;
    if (r.exitCode === 3) d.nothingToFollow = true;
    else if (!r.lost) void probe(block, hooks); // its shell ended: look now rather than in 5 s
  });
}

/**
 * A detached block's shell ended: deliver what it wrote that no channel brought here (its files
 * stay until the block's end removes them), after the follower, if any, has passed on its part.
 * False when the pool could not be reached and the next look should try again.
 */
async function readRest(block: Block): Promise<boolean> {
  const d = block.detached;
  if (!d) return true;
  if (d.follower) await within(d.follower.exited, 10_000, undefined, { unref: true });
  if (d.nothingToFollow) return true;
  let proc: HostProcess;
  try {
    proc = await block.lease.spawn(restCommand(block.info.id, block.seen), {
      onStartup: () => undefined,
    });
  } catch {
    // the pool went away again: the next look tries again, a few times
    return ++d.restTries >= REST_TRIES;
  }
  proc.stdin.end();
  capture(block, proc);
  const r = await within(proc.exited, 120_000, undefined, { unref: true });
  return !r?.lost || ++d.restTries >= REST_TRIES;
}
