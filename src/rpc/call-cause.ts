/**
 * Who caused the work running now: an RPC call (its client, session and request), a job, or
 * nothing (a reconnect, a timer). Carried by AsyncLocalStorage, so a service deep below the RPC
 * (an SSH connection opening for a tunnel of `executors.complete`) can say whom to ask when the
 * server asks a question, without every service passing it along.
 */
import { AsyncLocalStorage } from "node:async_hooks";

export interface CallCause {
  /** the routing identity of the RPC client that called, hex (or `in-process`) */
  client?: string;
  /** the caller's session: its message ids are `SESSION-N` (docs/protocol.md) */
  session?: string;
  /** the request id of the call */
  request?: string;
  method?: string;
  /** a job of `parsl-sidecar run` (its preparers: environments, executors, tunnels) */
  job?: string;
}

const storage = new AsyncLocalStorage<CallCause>();

/** The cause of the work running now, if any. */
export function currentCause(): CallCause | undefined {
  return storage.getStore();
}

/** Run `fn` (and everything it starts) as caused by `cause`; a job keeps the call's fields. */
export function withCause<T>(cause: CallCause, fn: () => T): T {
  const outer = storage.getStore();
  return storage.run(outer && cause.job ? { ...outer, ...cause } : cause, fn);
}

/**
 * The session of a message id: the part before its last `-` (`a1b2c3-1f` -> `a1b2c3`), as the
 * clients of this project make their ids. Undefined for an id without one.
 */
export function sessionOfId(id: string): string | undefined {
  const at = id.lastIndexOf("-");
  return at > 0 ? id.slice(0, at) : undefined;
}
