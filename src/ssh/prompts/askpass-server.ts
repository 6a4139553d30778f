/**
 * The broker's side of the sidecar's askpass helper (./askpass-helper.ts): a Unix socket in a
 * private directory (0700; the socket 0600) where the helper of an `ssh` process the sidecar
 * started hands over ssh's question. Each ssh gets a token (register) that says which host it
 * connects to and who caused it; a question with an unknown token is refused. The question goes
 * through the broker like any other, the answer back to the helper, and nothing is kept.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, rmdirSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { dirname, join } from "node:path";
import type { CallCause } from "../../rpc/call-cause.js";
import { writeFileAtomic } from "../../util/atomic-write.js";
import type { Logger } from "../../util/logger.js";
import { ensurePrivateDir } from "../../util/private-dir.js";
import type { PromptBroker } from "./broker.js";
import { ASKPASS_SOCKET_ENV, ASKPASS_TOKEN_ENV, askpassProgram } from "./askpass-helper.js";
import type { PromptKind, PromptQuestion } from "./types.js";

/** What one ssh process connects to, and who caused it. */
export interface AskpassContext {
  target: string;
  /** `user@host:port` as far as the sidecar knows it (ssh resolves the rest), when asked */
  host: string | (() => string);
  /** who to ask (a reconnect: undefined) */
  cause?: CallCause | (() => CallCause | undefined);
  /** called after the user answered one of its questions */
  answered?: () => void;
}

export interface AskpassRegistration {
  /** for that ssh process: SSH_ASKPASS, SSH_ASKPASS_REQUIRE=force, the socket and the token */
  env: Record<string, string>;
  /**
   * why its last question went unanswered (no one within the time limit, ...), until one is
   * answered: a login ssh then gives up on names this, the true cause
   */
  unanswered(): Error | undefined;
  /** forget the token (its ssh ended) */
  release(): void;
}

/** The longest question line taken from a helper. */
const MAX_LINE = 64 * 1024;

/**
 * What kind of question OpenSSH asks, from its wording (sshconnect.c, sshconnect2.c), and the
 * server's own text with ssh's `(user@host) ` in front removed.
 */
export function classifyOpenSshPrompt(
  prompt: string,
  hint: string,
): { kind: PromptKind; text: string; echo: boolean } {
  const text = prompt.replace(/^\([^)\s]+@[^)\s]+\) /, "");
  if (hint === "confirm" || /\(yes\/no(\/\[fingerprint\])?\)\??\s*$/.test(prompt))
    return { kind: "host", text: prompt, echo: true };
  if (/^Enter passphrase for |^Enter PIN for /.test(prompt))
    return { kind: "passphrase", text, echo: false };
  if (/'s password: $/.test(prompt) || /password/i.test(text))
    return { kind: "password", text, echo: false };
  return { kind: "code", text, echo: false };
}

export class AskpassServer {
  private readonly tokens = new Map<
    string,
    AskpassContext & { asked: Map<string, number>; unanswered?: Error }
  >();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly helperPath: string,
    readonly socketPath: string,
    private readonly broker: PromptBroker,
    private readonly log: Logger | undefined,
  ) {}

  /** Write the helper and listen in `dir` (made private if needed). */
  static async start(dir: string, broker: PromptBroker, log?: Logger): Promise<AskpassServer> {
    ensurePrivateDir(dir);
    const helperPath = join(dir, "askpass");
    writeFileAtomic(helperPath, askpassProgram(), { mode: 0o700 });
    const socketPath = join(dir, `askpass-${randomBytes(4).toString("hex")}.sock`);
    if (existsSync(socketPath)) rmSync(socketPath, { force: true });
    let self: AskpassServer | undefined;
    const server = createServer((sock) => self?.serve(sock));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
    chmodSync(socketPath, 0o600);
    self = new AskpassServer(server, helperPath, socketPath, broker, log);
    return self;
  }

  /** A token and the environment for one ssh process whose questions go to the broker. */
  register(ctx: AskpassContext): AskpassRegistration {
    const token = randomBytes(32).toString("hex");
    const entry: AskpassContext & { asked: Map<string, number>; unanswered?: Error } = {
      ...ctx,
      asked: new Map(),
    };
    this.tokens.set(token, entry);
    return {
      unanswered: () => entry.unanswered,
      env: {
        SSH_ASKPASS: this.helperPath,
        SSH_ASKPASS_REQUIRE: "force",
        [ASKPASS_SOCKET_ENV]: this.socketPath,
        [ASKPASS_TOKEN_ENV]: token,
      },
      release: () => {
        this.tokens.delete(token);
      },
    };
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.setEncoding("utf8");
    let got = "";
    let answered = false;
    const ended = new AbortController();
    const reply = (body: { answer: string } | { error: string }): void => {
      if (answered) return;
      answered = true;
      sock.end(`${JSON.stringify(body)}\n`);
    };
    sock.on("close", () => {
      this.sockets.delete(sock);
      ended.abort(new Error("the askpass helper went away (its ssh ended)"));
    });
    sock.on("error", () => undefined);
    sock.on("data", (chunk: string) => {
      if (answered) return;
      got += chunk;
      if (got.length > MAX_LINE) return reply({ error: "question too long" });
      const nl = got.indexOf("\n");
      if (nl < 0) return;
      let msg: { token?: unknown; prompt?: unknown; hint?: unknown };
      try {
        msg = JSON.parse(got.slice(0, nl)) as typeof msg;
      } catch {
        return reply({ error: "malformed question" });
      }
      void this.answer(msg, ended.signal).then(reply, (err: Error) =>
        reply({ error: err.message }),
      );
    });
  }

  private async answer(
    msg: { token?: unknown; prompt?: unknown; hint?: unknown },
    signal: AbortSignal,
  ): Promise<{ answer: string }> {
    const ctx = typeof msg.token === "string" ? this.tokens.get(msg.token) : undefined;
    if (!ctx) throw new Error("unknown token: this ssh was not started by this sidecar");
    const prompt = typeof msg.prompt === "string" ? msg.prompt : "";
    const hint = typeof msg.hint === "string" ? msg.hint : "";
    // a notice (touch the security key) needs no answer
    if (hint === "none") return { answer: "" };
    const { kind, text, echo } = classifyOpenSshPrompt(prompt, hint);
    const attempt = (ctx.asked.get(prompt) ?? 0) + 1;
    ctx.asked.set(prompt, attempt);
    const q: PromptQuestion = {
      target: ctx.target,
      host: typeof ctx.host === "function" ? ctx.host() : ctx.host,
      kind,
      name: "",
      instructions: "",
      prompts: [{ text, echo }],
      attempt,
      transport: "openssh",
      ...(attempt > 1 ? { message: "The server did not accept the previous answer." } : {}),
    };
    const cause = typeof ctx.cause === "function" ? ctx.cause() : ctx.cause;
    this.log?.debug({ target: ctx.target, kind, attempt }, "askpass helper asks");
    let answers: string[];
    try {
      answers = await this.broker.ask(q, cause, signal);
    } catch (err) {
      if (!signal.aborted) ctx.unanswered = err as Error;
      throw err;
    }
    const [answer = ""] = answers;
    delete ctx.unanswered;
    ctx.answered?.();
    return { answer };
  }

  async close(): Promise<void> {
    this.tokens.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.socketPath, { force: true });
    rmSync(this.helperPath, { force: true });
    // the directory too, once nothing else is in it
    try {
      rmdirSync(dirname(this.helperPath));
    } catch {
      // not empty, or already gone
    }
  }
}
