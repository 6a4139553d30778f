/** What SshConnections gives every link it makes, whatever carries it (src/ssh/link.ts). */
import type { AuthOptions } from "./auth.js";
import type { AskFn, PromptQuestion } from "./prompts/types.js";

export interface ReconnectPolicy {
  /** first retry after this many ms @default 100 */
  initialMs: number;
  /** delays double up to this @default 10000 */
  maxMs: number;
}

/** How a link asks the user what the server asks (src/ssh/prompts/): the broker's side. */
export interface LinkPrompts {
  ask: AskFn;
  /** whether someone can answer now: a key's passphrase is asked only then */
  canAsk(question: PromptQuestion): boolean;
}

export interface LinkSettings {
  auth?: AuthOptions;
  /** keepalive interval in ms (0 = off) */
  keepaliveMs: number;
  keepaliveCount: number;
  /** handshake timeout in ms */
  readyTimeoutMs: number;
  reconnect: ReconnectPolicy;
  /** concurrent session channels (exec, spawn, sftp) per connection; OpenSSH's MaxSessions is 10 @default 10 */
  maxSessions: number;
  /** how long putFile waits for the connection (through a reconnect) and a session slot */
  waitReadyMs: number;
  log?: (msg: string, data?: Record<string, unknown>) => void;
  /** questions from the server (codes, passwords, passphrases) go here; none: nobody is asked */
  prompts?: LinkPrompts;
}
