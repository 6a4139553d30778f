/**
 * One empty session on each jump host's connection, for the reason src/ssh/first-session.ts
 * gives: the jump's sshd forwards the pool's small SSH packets to this side with Nagle's
 * algorithm on until a session starts there. A jump that refuses sessions is left as it is.
 */
import type { Client } from "ssh2";
import { discard, FIRST_SESSION_COMMAND, FIRST_SESSION_DELAY_MS } from "../first-session.js";

/** After FIRST_SESSION_DELAY_MS (not at once: see there), unless the connection is gone. */
export function openJumpSession(client: Client): void {
  setTimeout(() => run(client), FIRST_SESSION_DELAY_MS).unref();
}

function run(client: Client): void {
  try {
    client.exec(FIRST_SESSION_COMMAND, (err, ch) => {
      if (!err) discard(ch);
    });
  } catch {
    // the connection is already closing
  }
}
