/**
 * The prompt broker: a question from a server (a one-time code, a password, a key's passphrase)
 * is asked of whoever can answer, and the first answer goes back to the transport that asked.
 *
 * A prompt is published as an `ssh.prompt` event: to the RPC client whose call caused the
 * connection (over its own connection, even unsubscribed), to subscribers (the live page).
 * In-process attendants (a CLI command's terminal) are offered it directly, and the user's
 * SSH_ASKPASS program is run as OpenSSH would (./user-askpass.ts). No answer within the time
 * limit is SSH_AUTH naming the host, the prompt and the ways to answer. Answers are handed over
 * and forgotten: never logged, never written, never kept after the step that asked.
 */
import { randomBytes } from "node:crypto";
import { SidecarError } from "../../errors.js";
import type { EventBus } from "../../events.js";
import type { CallCause } from "../../rpc/call-cause.js";
import { formatDuration, parseDuration } from "../../util/duration.js";
import type { Logger } from "../../util/logger.js";
import type { Prompt, PromptAttendant, PromptQuestion } from "./types.js";
import { askpassPolicy, runAskpass } from "./user-askpass.js";

/** Env var: how long a prompt waits for an answer (a duration, or seconds). */
export const PROMPT_TIMEOUT_ENV = "PARSL_SIDECAR_PROMPT_TIMEOUT";
/**
 * Below sshd's LoginGraceTime (120 s by default), so that the sidecar, not the server's
 * disconnect, says what went unanswered.
 */
export const DEFAULT_PROMPT_TIMEOUT_MS = 90_000;
/** The topic prompts are published on; `ssh.prompt.closed` follows each. */
export const PROMPT_TOPIC = "ssh.prompt";
/** Longest answer taken (OpenSSH reads at most 1023 bytes). */
const MAX_ANSWER_CHARS = 1024;

export interface PromptBrokerOptions {
  /** where `ssh.prompt` events go (absent: no RPC clients, no page) */
  events?: EventBus;
  log?: Logger;
  /** @default $PARSL_SIDECAR_PROMPT_TIMEOUT, else 90 s */
  timeoutMs?: number;
  /** whether an RPC client of a session listens for prompts (src/rpc/server.ts) */
  listening?: (session: string, topic: string) => boolean;
  /** for SSH_ASKPASS, SSH_ASKPASS_REQUIRE, DISPLAY @default process.env */
  env?: NodeJS.ProcessEnv;
  /** the sidecar's own askpass helper, which is never run as the user's SSH_ASKPASS */
  ownHelper?: string;
}

interface OpenPrompt {
  prompt: Prompt;
  settle: (answers: string[] | Error, outcome: string) => void;
}

/** The prompt timeout from the environment (a bad value is named, not ignored). */
export function promptTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = env[PROMPT_TIMEOUT_ENV];
  if (v === undefined || v === "") return DEFAULT_PROMPT_TIMEOUT_MS;
  return parseDuration(v, `$${PROMPT_TIMEOUT_ENV}`);
}

/** The user and host part of `user@host:port`, as OpenSSH prefixes prompts: `(user@host) `. */
function who(host: string): string {
  return host.replace(/:\d+$/, "");
}

/** How ssh itself words a prompt for askpass and terminals: `(alice@hpc) Verification code: `. */
export function displayText(p: PromptQuestion, line: string): string {
  return p.kind === "code" || p.kind === "password" ? `(${who(p.host)}) ${line}` : line;
}

function asked(p: PromptQuestion): string {
  const texts = p.prompts.map((l) => `"${l.text.trim()}"`).join(", ");
  switch (p.kind) {
    case "code":
      return `asked ${texts} (keyboard-interactive: a one-time code or another question)`;
    case "password":
      return `asked for a password (${texts})`;
    case "passphrase":
      return `needs a key's passphrase (${texts})`;
    case "host":
      return `asked about the host (${texts})`;
  }
}

/** The ways to answer, for messages (docs/ssh.md, "How prompts reach you"). */
export function waysToAnswer(askpassWhy: string): string {
  return (
    "Answer it at the terminal of the parsl-sidecar command that caused the connection (it asks when its stdin is a terminal), " +
    "from Python with a `prompt=` callable (`parsl_sidecar.connect(prompt=...)` or `parsl_config(prompt=...)`; the default asks with getpass in a terminal), " +
    `or on the live page (\`parsl-sidecar ui\`); or set SSH_ASKPASS to a program that prints the answer (not used now: ${askpassWhy}; SSH_ASKPASS_REQUIRE=force uses it without a display).`
  );
}

export class PromptBroker {
  private readonly open = new Map<string, OpenPrompt>();
  private readonly attendants = new Set<PromptAttendant>();
  readonly timeoutMs: number;
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly opts: PromptBrokerOptions = {}) {
    this.env = opts.env ?? process.env;
    this.timeoutMs = opts.timeoutMs ?? promptTimeoutMs(this.env);
  }

  /** Add someone in this process who may answer; the returned function removes them. */
  attend(a: PromptAttendant): () => void {
    this.attendants.add(a);
    return () => this.attendants.delete(a);
  }

  /** The open prompts, oldest first. */
  list(): Prompt[] {
    return [...this.open.values()].map((o) => ({ ...o.prompt }));
  }

  /**
   * Whether someone is there to answer a question of `cause` now: a client of its session that
   * listens, an attendant, or an askpass program. A key's passphrase is asked only then.
   */
  canAsk(question: PromptQuestion, cause: CallCause | undefined): boolean {
    const probe = this.record(question, cause, "probe");
    return (
      probe.attended ||
      [...this.attendants].some((a) => a.covers(probe)) ||
      askpassPolicy(this.env, this.opts.ownHelper).use !== "never"
    );
  }

  private record(q: PromptQuestion, cause: CallCause | undefined, id: string): Prompt {
    const now = Date.now();
    const session = cause?.session;
    return {
      ...q,
      id,
      cause: cause ?? null,
      attended: session !== undefined && (this.opts.listening?.(session, PROMPT_TOPIC) ?? false),
      askpass: false,
      opened_at: now,
      expires_at: now + this.timeoutMs,
    };
  }

  /**
   * Ask `question` for `cause`. Resolves with one answer per prompt line; rejects with SSH_AUTH
   * when no one answered in time (or no one can be asked at all), or with `signal`'s reason.
   */
  ask(
    question: PromptQuestion,
    cause: CallCause | undefined,
    signal?: AbortSignal,
  ): Promise<string[]> {
    const prompt = this.record(question, cause, randomBytes(8).toString("hex"));
    const covering = [...this.attendants].filter((a) => a.covers(prompt));
    const policy = askpassPolicy(this.env, this.opts.ownHelper);
    const askpass =
      policy.program !== undefined &&
      (policy.use === "now" ||
        (policy.use === "if-unattended" && !prompt.attended && covering.length === 0));
    prompt.askpass = askpass;
    const { log, events } = this.opts;
    if (!events && covering.length === 0 && !askpass) {
      return Promise.reject(
        new SidecarError(
          "SSH_AUTH",
          `${prompt.host} (target \`${prompt.target}\`) ${asked(prompt)}, and there is no one to ask here: no terminal, no client, no SSH_ASKPASS (${policy.why}). ${waysToAnswer(policy.why)}`,
          { data: this.errorData(prompt, "nobody") },
        ),
      );
    }
    return new Promise<string[]>((resolve, reject) => {
      const done = new AbortController();
      const timer = setTimeout(() => {
        settle(
          new SidecarError(
            "SSH_AUTH",
            `${prompt.host} (target \`${prompt.target}\`) ${asked(prompt)}, and no one answered within ${formatDuration(this.timeoutMs)}. ${waysToAnswer(askpass ? "it did not answer either" : policy.why)} The time limit is $${PROMPT_TIMEOUT_ENV} (default ${formatDuration(DEFAULT_PROMPT_TIMEOUT_MS)}).`,
            { data: this.errorData(prompt, "timeout") },
          ),
          "timeout",
        );
      }, this.timeoutMs);
      const onAbort = (): void =>
        settle(
          signal?.reason instanceof Error ? signal.reason : new Error("the prompt was cancelled"),
          "cancelled",
        );
      const settle = (result: string[] | Error, outcome: string): void => {
        if (!this.open.delete(prompt.id)) return;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        done.abort();
        // the outcome only: never the answer
        log?.info({ prompt: prompt.id, target: prompt.target, outcome }, "ssh prompt closed");
        events?.emit(`${PROMPT_TOPIC}.closed`, { id: prompt.id, target: prompt.target, outcome });
        if (result instanceof Error) reject(result);
        else resolve(result);
      };
      this.open.set(prompt.id, { prompt, settle });
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      log?.info(
        {
          prompt: prompt.id,
          target: prompt.target,
          kind: prompt.kind,
          text: prompt.prompts.map((l) => l.text),
          cause: prompt.cause,
          attended: prompt.attended,
          askpass,
        },
        "ssh prompt open",
      );
      const to = cause?.client;
      events?.emit(PROMPT_TOPIC, { ...prompt }, to && /^[0-9a-f]+$/.test(to) ? { to } : {});
      for (const a of covering) {
        try {
          a.offer(
            prompt,
            (answers) => this.answerQuietly(prompt.id, answers, "terminal"),
            done.signal,
          );
        } catch (err) {
          log?.warn(
            { prompt: prompt.id, err: (err as Error).message },
            "a prompt attendant failed",
          );
        }
      }
      if (askpass && policy.program)
        void this.viaAskpass(prompt, policy.program, done.signal, covering.length === 0);
    });
  }

  private async viaAskpass(
    prompt: Prompt,
    program: string,
    signal: AbortSignal,
    only: boolean,
  ): Promise<void> {
    const answers: string[] = [];
    try {
      for (const line of prompt.prompts) {
        answers.push(
          await runAskpass(program, displayText(prompt, line.text), {
            confirm: prompt.kind === "host",
            signal,
            env: this.env,
          }),
        );
      }
      this.answerQuietly(prompt.id, answers, "askpass");
    } catch (err) {
      if (signal.aborted) return;
      this.opts.log?.warn(
        { prompt: prompt.id, err: (err as Error).message },
        "SSH_ASKPASS gave no answer",
      );
      // the askpass was the one way (no client, no terminal): say so now rather than at the timeout
      if (only && !prompt.attended)
        this.open
          .get(prompt.id)
          ?.settle(
            new SidecarError(
              "SSH_AUTH",
              `${prompt.host} (target \`${prompt.target}\`) ${asked(prompt)}; ${(err as Error).message}, and no one else was asked. ${waysToAnswer("it gave no answer")}`,
              { data: this.errorData(prompt, "askpass") },
            ),
            "askpass-failed",
          );
    } finally {
      answers.fill("");
    }
  }

  private errorData(p: Prompt, why: string): Record<string, unknown> {
    return {
      target: p.target,
      host: p.host,
      kind: p.kind,
      prompts: p.prompts.map((l) => l.text),
      prompt_id: p.id,
      unanswered: why,
      timeout_ms: this.timeoutMs,
    };
  }

  private answerQuietly(id: string, answers: string[], by: string): void {
    try {
      this.answer(id, answers, by);
    } catch {
      // answered by someone else first: nothing to do
    }
  }

  /**
   * Answer an open prompt (the `ssh.prompt.answer` method). `answers` is checked without ever
   * putting it in a message: one string per prompt line.
   */
  answer(id: string, answers: unknown, by = "rpc"): void {
    const open = this.open.get(id);
    if (!open) {
      throw new SidecarError(
        "INVALID_ARGUMENT",
        `No open prompt \`${id}\`: it was answered already, timed out, or its connection attempt ended (ssh.prompt.list shows the open ones)`,
        { data: { id, reason: "not-open" } },
      );
    }
    const n = open.prompt.prompts.length;
    if (
      !Array.isArray(answers) ||
      answers.length !== n ||
      !answers.every((a) => typeof a === "string" && a.length <= MAX_ANSWER_CHARS)
    ) {
      // the value is a secret: its shape only
      const got = Array.isArray(answers)
        ? `${answers.length} item(s)${answers.every((a) => typeof a === "string") ? "" : " not all strings"}`
        : typeof answers;
      throw new SidecarError(
        "INVALID_PARAMS",
        `Expected \`params.answers\` to be ${n} string(s) of at most ${MAX_ANSWER_CHARS} characters, one per prompt line of prompt \`${id}\`; got ${got} (the values are not shown)`,
        { data: { id } },
      );
    }
    this.opts.log?.info({ prompt: id, by }, "ssh prompt answered");
    open.settle([...(answers as string[])], "answered");
  }

  /** Fail every open prompt (shutdown). */
  close(): void {
    for (const o of [...this.open.values()])
      o.settle(new SidecarError("SHUTTING_DOWN", "The sidecar is shutting down"), "cancelled");
  }
}
