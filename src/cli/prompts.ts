/**
 * A CLI command's terminal answers what servers ask (docs/ssh.md, "How prompts reach you"): a
 * prompt from the sidecar is shown on stderr and read from stdin without echo (echo only when
 * the server says so), then sent back. Only when stdin is a terminal: otherwise the command does
 * not answer and someone else may (the live page, SSH_ASKPASS, another client).
 *
 * Over the RPC the command subscribes to `ssh.prompt` and answers the prompts its own calls
 * caused; a command that hosts the SSH connections itself (`stage`, `run`, `env ensure` of a
 * pool) attends its broker directly.
 */
import type { SidecarClient } from "../client/client.js";
import type { SidecarEvent } from "../events.js";
import type { PromptBroker } from "../ssh/prompts/broker.js";
import type { Prompt } from "../ssh/prompts/types.js";

/** Show the server's text the way ssh does: `(user@host) Verification code: `. */
function display(p: Prompt, text: string): string {
  return p.kind === "code" || p.kind === "password"
    ? `(${p.host.replace(/:\d+$/, "")}) ${text}`
    : text;
}

/**
 * Read one line from a terminal stdin in raw mode: no echo unless `echo`, backspace and Ctrl-U
 * edit, Ctrl-C interrupts the command, Ctrl-D on an empty line gives up. Undefined when given up
 * or aborted (the prompt was answered elsewhere).
 */
function readLine(text: string, echo: boolean, signal: AbortSignal): Promise<string | undefined> {
  const stdin = process.stdin;
  const out = process.stderr;
  return new Promise((resolve) => {
    let line = "";
    const finish = (value: string | undefined): void => {
      stdin.off("data", onData);
      signal.removeEventListener("abort", onAbort);
      stdin.setRawMode(false);
      stdin.pause();
      out.write("\n");
      resolve(value);
    };
    const onAbort = (): void => {
      out.write(" (answered elsewhere)");
      finish(undefined);
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return finish(line);
        if (ch === "\u0003") {
          finish(undefined);
          process.kill(process.pid, "SIGINT");
          return;
        }
        if (ch === "\u0004") {
          if (line === "") return finish(undefined);
          continue;
        }
        if (ch === "\u007f" || ch === "\b") {
          if (line.length > 0) {
            line = line.slice(0, -1);
            if (echo) out.write("\b \b");
          }
          continue;
        }
        if (ch === "\u0015") {
          if (echo) out.write("\b \b".repeat(line.length));
          line = "";
          continue;
        }
        if (ch < " ") continue;
        line += ch;
        if (echo) out.write(ch);
      }
    };
    out.write(text);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on("data", onData);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Asks prompts on this process's terminal, one at a time. */
export class TerminalPrompter {
  private queue: Promise<unknown> = Promise.resolve();

  /** Whether there is a terminal to ask on (stdin is a TTY). */
  static available(): boolean {
    return process.stdin.isTTY === true && typeof process.stdin.setRawMode === "function";
  }

  /** One answer per line, or undefined when the user gave up or it was answered elsewhere. */
  ask(p: Prompt, signal: AbortSignal): Promise<string[] | undefined> {
    const run = async (): Promise<string[] | undefined> => {
      if (signal.aborted) return undefined;
      const err = process.stderr;
      err.write(
        `parsl-sidecar: ${p.host} (target \`${p.target}\`) asks${p.kind === "passphrase" ? " for a key's passphrase" : ""}:\n`,
      );
      if (p.message) err.write(`${p.message}\n`);
      for (const t of [p.name, p.instructions]) if (t.trim()) err.write(`${t.trim()}\n`);
      const answers: string[] = [];
      for (const line of p.prompts) {
        const a = await readLine(display(p, line.text), line.echo, signal);
        if (a === undefined) return undefined;
        answers.push(a);
      }
      return answers;
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }
}

export interface AnswerScope {
  /** also answer prompts no client attends (a command that hosts the sidecar of its job) */
  unattended?: boolean;
  /** the job whose preparers' prompts are this command's */
  job?: string;
}

function mine(p: Prompt, session: string | undefined, scope: AnswerScope): boolean {
  // the user's SSH_ASKPASS is asked instead of a terminal (SSH_ASKPASS_REQUIRE=force/prefer)
  if (p.askpass) return false;
  if (session !== undefined && p.cause?.session === session) return true;
  if (scope.job !== undefined && p.cause?.job === scope.job) return true;
  return scope.unattended === true && !p.attended;
}

/**
 * Answer, on this terminal, the prompts `client`'s calls cause. Returns how to stop; a no-op
 * when stdin is not a terminal. While a prompt is open, the client's call timeouts stand still.
 */
export async function answerPromptsOverRpc(
  client: SidecarClient,
  scope: AnswerScope = {},
): Promise<() => Promise<void>> {
  if (!TerminalPrompter.available()) return async () => undefined;
  const terminal = new TerminalPrompter();
  const open = new Map<string, AbortController>();
  const onEvent = (e: SidecarEvent): void => {
    if (e.topic === "ssh.prompt.closed") {
      open.get(String(e.data.id))?.abort();
      return;
    }
    if (e.topic !== "ssh.prompt") return;
    const p = e.data as unknown as Prompt;
    if (open.has(p.id) || !mine(p, client.session, scope)) return;
    const ctl = new AbortController();
    open.set(p.id, ctl);
    const resume = client.pauseTimeouts();
    void terminal
      .ask(p, ctl.signal)
      .then(async (answers) => {
        if (answers)
          await client.call("ssh.prompt.answer", { id: p.id, answers }).catch(() => undefined);
      })
      .finally(() => {
        open.delete(p.id);
        resume();
      });
  };
  const unsubscribe = await client.subscribe(["ssh.prompt"], onEvent);
  return async () => {
    for (const c of open.values()) c.abort();
    await unsubscribe();
  };
}

/** Answer, on this terminal, the prompts of SSH connections this process holds itself. */
export function answerPromptsInProcess(broker: PromptBroker, scope: AnswerScope = {}): () => void {
  if (!TerminalPrompter.available()) return () => undefined;
  const terminal = new TerminalPrompter();
  return broker.attend({
    covers: (p) => !p.askpass && (scope.job === undefined ? true : mine(p, undefined, scope)),
    offer: (p, answer, signal) => {
      void terminal.ask(p, signal).then((answers) => answers && answer(answers));
    },
  });
}
