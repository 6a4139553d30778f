/**
 * What a question from a server looks like on its way to the user (docs/ssh.md, "How prompts
 * reach you"), whatever transport asked it: ssh2's keyboard-interactive and password methods, a
 * key's passphrase, or the user's OpenSSH through the sidecar's askpass helper.
 */
import type { CallCause } from "../../rpc/call-cause.js";

/**
 * `code`: a one-time code or another keyboard-interactive question (Duo's choice); `password`;
 * `passphrase` of an encrypted key; `host`: a question about the host (OpenSSH's "Are you sure
 * you want to continue connecting").
 */
export type PromptKind = "code" | "password" | "passphrase" | "host";

/** One line to answer, with whether the answer may be shown while typed (the server says). */
export interface PromptLine {
  text: string;
  echo: boolean;
}

/** What a transport asks. */
export interface PromptQuestion {
  /** the target as given (`hpc`, `alice@login:2222`) */
  target: string;
  /** `user@host:port` as connected */
  host: string;
  kind: PromptKind;
  /** the server's name for the exchange (keyboard-interactive), often empty */
  name: string;
  /** the server's instructions (keyboard-interactive), often empty */
  instructions: string;
  prompts: PromptLine[];
  /** 1 on the first try; higher after the server refused an answer */
  attempt: number;
  /** on a retry: what the server said about the previous answer */
  message?: string;
  transport: "ssh2" | "openssh";
}

/** An open prompt as the broker publishes it (`ssh.prompt`) and lists it (`ssh.prompt.list`). */
export interface Prompt extends PromptQuestion {
  id: string;
  /** who caused the connection: an RPC call, a job, or null (a reconnect) */
  cause: CallCause | null;
  /** whether the client that caused it said it answers prompts (subscribed to `ssh.prompt`) */
  attended: boolean;
  /** whether the user's SSH_ASKPASS program is asked too */
  askpass: boolean;
  opened_at: number;
  expires_at: number;
}

/**
 * Someone in this process who may answer (the terminal of a CLI command that hosts the SSH
 * connections itself). RPC clients are not attendants: they get the `ssh.prompt` event.
 */
export interface PromptAttendant {
  /** whether this one answers `prompt` */
  covers(prompt: Prompt): boolean;
  /** ask; call `answer` with one answer per line; `signal` aborts when the prompt closes */
  offer(prompt: Prompt, answer: (answers: string[]) => void, signal: AbortSignal): void;
}

/** How a transport asks: one answer per line, or a rejection (SSH_AUTH when no one answered). */
export type AskFn = (question: PromptQuestion, signal?: AbortSignal) => Promise<string[]>;
