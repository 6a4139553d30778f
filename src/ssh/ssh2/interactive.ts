/**
 * ssh2's authentication for one hop, in OpenSSH's order: the agent and keys, an encrypted key
 * whose passphrase is asked (when someone can answer), then keyboard-interactive (one-time codes,
 * Duo, PAM) and passwords, their questions going through the prompt broker. It remembers what
 * the server said (a key accepted with partial success, an answer refused) so that the final
 * error tells what really happened: never "the server refused key ..." when the server took
 * the key and asked for a code.
 */
import { SidecarError } from "../../errors.js";
import {
  authFailed,
  noWayToAuthenticate,
  planAuth,
  type AuthMethod,
  type AuthPlan,
} from "./auth.js";
import type { AuthOptions } from "../auth.js";
import type { LinkPrompts } from "../link-settings.js";
import type { ResolvedHost } from "../config.js";
import type { PromptLine, PromptQuestion } from "../prompts/types.js";
import { ssh2 } from "./lazy.js";
import { ssh2AuthGaps, USE_OPENSSH } from "./unsupported.js";

/** How a hop asks the user (absent: no one can be asked, as in a library without a broker). */
export type HopPrompts = LinkPrompts;

type KbdPrompt = (
  name: string,
  instructions: string,
  lang: string,
  prompts: Array<{ prompt: string; echo?: boolean }>,
  finish: (answers: string[]) => void,
) => void;

export type NextAuth =
  | AuthMethod
  | { type: "keyboard-interactive"; username: string; prompt: KbdPrompt }
  | { type: "password"; username: string; password: string }
  | { type: "none"; username: string }
  | false;

export interface FlowHooks {
  /** a question to the user is open (true) or answered (false): the handshake clock stops */
  asking(open: boolean): void;
  /** give up now with this error (no one answered) */
  fail(err: Error): void;
}

export class AuthFlow {
  private plan: AuthPlan | undefined;
  private planError: SidecarError | undefined;
  private nextKey = 0;
  private nextDeferred = 0;
  private last: { type: string; described?: string; answered?: boolean } | undefined;
  /** the method the server accepted while asking for more (partial success) */
  private accepted: string | undefined;
  private serverWants: string[] | null = null;
  private readonly kbd = { tries: 0, refused: 0, asked: [] as string[], said: [] as string[] };
  private readonly pw = { tries: 0, refused: 0 };
  /** the server's last banner (USERAUTH_BANNER): what it says about a refused answer, if anything */
  private banner: string | undefined;

  constructor(
    private readonly host: ResolvedHost,
    private readonly auth: AuthOptions | undefined,
    private readonly prompts: HopPrompts | undefined,
    private readonly hooks: FlowHooks,
    /** aborted when the handshake ends: open questions are withdrawn */
    private readonly signal?: AbortSignal,
  ) {}

  /** Whether questions may be asked at all here. */
  private get interactive(): boolean {
    return this.prompts !== undefined && !this.host.batchMode;
  }

  private get where(): string {
    return `${this.host.user}@${this.host.hostName}:${this.host.port}`;
  }

  /**
   * ssh2's `banner` event. One that comes after an answer is what the server says about it: kept
   * for the next question and the error (a welcome banner before any answer is not).
   */
  noteBanner(message: string): void {
    const m = message.trim();
    if (m && this.last?.answered) {
      this.banner = m.length > 500 ? `${m.slice(0, 497)}...` : m;
      this.kbd.said.push(this.banner);
    }
  }

  /** ssh2's `authHandler(methodsLeft, partialSuccess, next)`. */
  readonly handler = (
    left: string[] | null,
    partial: boolean | null,
    next: (m: NextAuth) => void,
  ): void => {
    this.choose(left, partial === true).then(next, (err: Error) => this.hooks.fail(err));
  };

  private question(
    kind: PromptQuestion["kind"],
    prompts: PromptLine[],
    extra: Partial<PromptQuestion> = {},
  ): PromptQuestion {
    return {
      target: this.host.target,
      host: `${this.where}`,
      kind,
      name: "",
      instructions: "",
      prompts,
      attempt: 1,
      transport: "ssh2",
      ...extra,
    };
  }

  private async choose(left: string[] | null, partial: boolean): Promise<NextAuth> {
    if (!this.plan && !this.planError) {
      try {
        this.plan = planAuth(this.host, { ...this.auth, allowEmpty: this.interactive });
      } catch (err) {
        this.planError = err as SidecarError;
      }
    }
    this.learn(left, partial);
    const plan = this.plan;
    if (!plan) return false;
    const allows = (m: string): boolean => left === null || left.includes(m);
    if (left === null && plan.methods.length === 0) {
      // no key to lead with: learn what the server takes before asking anyone anything
      this.last = { type: "none" };
      return { type: "none", username: this.host.user };
    }
    if (allows("publickey")) {
      const m = plan.methods[this.nextKey];
      if (m) {
        this.last = { type: m.type, described: plan.described[this.nextKey] };
        this.nextKey++;
        return m;
      }
      while (this.nextDeferred < plan.deferred.length) {
        const d = plan.deferred[this.nextDeferred++]!;
        const key = await this.unlock(plan, d);
        if (key) {
          const described = `key ${d.file} (${key.type})`;
          plan.described.push(described);
          this.last = { type: "publickey", described };
          return { type: "publickey", username: this.host.user, key };
        }
      }
    }
    if (!this.interactive) return false;
    const tries = this.host.numberOfPasswordPrompts;
    if (allows("keyboard-interactive") && this.host.kbdInteractiveAuthentication) {
      if (this.kbd.tries < tries) {
        this.kbd.tries++;
        const attempt = { type: "keyboard-interactive", answered: false };
        this.last = attempt;
        return {
          type: "keyboard-interactive",
          username: this.host.user,
          prompt: (name, instructions, _lang, lines, finish) =>
            this.answerInfoRequest(attempt, name, instructions, lines, finish),
        };
      }
    }
    if (allows("password") && this.host.passwordAuthentication && this.pw.tries < tries) {
      this.pw.tries++;
      const q = this.question(
        "password",
        [{ text: `${this.host.user}@${this.host.hostName}'s password: `, echo: false }],
        {
          attempt: this.pw.tries,
          ...(this.pw.refused > 0 ? { message: "The server refused the password." } : {}),
        },
      );
      this.hooks.asking(true);
      const [password] = await this.prompts!.ask(q, this.signal);
      this.hooks.asking(false);
      this.last = { type: "password", answered: true };
      return { type: "password", username: this.host.user, password: password ?? "" };
    }
    return false;
  }

  /** What the server's last USERAUTH_FAILURE says about the method just tried. */
  private learn(left: string[] | null, partial: boolean): void {
    const last = this.last;
    if (left === null || !last) return;
    this.serverWants = left;
    if (partial) {
      if (last.described) this.accepted = last.described;
      else if (last.type === "keyboard-interactive") this.accepted = "the answer";
    } else if (last.type === "keyboard-interactive" && last.answered) this.kbd.refused++;
    else if (last.type === "password" && last.answered) this.pw.refused++;
  }

  private answerInfoRequest(
    attempt: { answered: boolean },
    name: string,
    instructions: string,
    lines: Array<{ prompt: string; echo?: boolean }>,
    finish: (answers: string[]) => void,
  ): void {
    const prompts = lines.map((l) => ({ text: l.prompt, echo: l.echo === true }));
    const texts = prompts.map((p) => p.text.trim());
    for (const t of texts) if (!this.kbd.asked.includes(t)) this.kbd.asked.push(t);
    if (instructions.trim()) this.kbd.said.push(instructions.trim());
    const q = this.question(
      prompts.some((p) => /password/i.test(p.text)) ? "password" : "code",
      prompts,
      {
        name,
        instructions,
        attempt: this.kbd.tries,
        ...(this.kbd.refused > 0
          ? {
              message: `The server did not accept the previous answer to ${texts.map((t) => `"${t}"`).join(", ")}${this.banner ? `; it said: ${this.banner}` : ""}.`,
            }
          : {}),
      },
    );
    this.hooks.asking(true);
    this.prompts!.ask(q, this.signal).then(
      (answers) => {
        this.hooks.asking(false);
        attempt.answered = true;
        finish(answers);
        answers.fill("");
      },
      (err: Error) => this.hooks.fail(err),
    );
  }

  /** Ask for an encrypted key's passphrase (when someone can answer); the key, or undefined. */
  private async unlock(
    plan: AuthPlan,
    d: { file: string; data: Buffer },
  ): Promise<ReturnType<typeof parseKey> | undefined> {
    if (!this.interactive) return undefined;
    const tries = this.host.numberOfPasswordPrompts;
    for (let attempt = 1; attempt <= tries; attempt++) {
      const q = this.question(
        "passphrase",
        [{ text: `Enter passphrase for key '${d.file}': `, echo: false }],
        {
          attempt,
          ...(attempt > 1 ? { message: "That passphrase did not decrypt the key." } : {}),
        },
      );
      if (!this.prompts!.canAsk(q)) return undefined;
      let passphrase: string;
      this.hooks.asking(true);
      try {
        [passphrase = ""] = await this.prompts!.ask(q, this.signal);
      } catch (err) {
        plan.problems.push(`identity file ${d.file} is encrypted: ${(err as Error).message}`);
        return undefined;
      } finally {
        this.hooks.asking(false);
      }
      // never cached: the decrypted key lives for this handshake only
      const key = parseKey(d.data, passphrase);
      if (key) {
        plan.problems = plan.problems.filter((p) => !p.startsWith(`identity file ${d.file} `));
        return key;
      }
    }
    plan.problems.push(`identity file ${d.file}: the passphrase was wrong ${tries} times`);
    return undefined;
  }

  /** The SSH_AUTH error once ssh2 gives up: what the server accepted, asked and refused. */
  failure(cause?: unknown): SidecarError {
    if (this.planError) return this.planError;
    const plan = this.plan ?? { methods: [], described: [], problems: [], deferred: [] };
    const host = this.host;
    const gaps = ssh2AuthGaps(host);
    const needs =
      gaps.names.length > 0
        ? ` The ssh config asks for what the built-in ssh2 transport cannot do: ${gaps.what.join("; ")}; ${USE_OPENSSH}.`
        : "";
    const wants = this.serverWants ?? [];
    const others = wants.filter((m) => m !== "publickey");
    const refused = this.kbd.refused + this.pw.refused;
    const data = {
      target: host.target,
      user: host.user,
      tried: plan.described,
      accepted: this.accepted ?? null,
      server_wants: this.serverWants,
      asked: this.kbd.asked,
      refused,
      ...(gaps.names.length > 0
        ? { unsupported: gaps.names, transport: "ssh2", suggest: "openssh" }
        : {}),
    };
    const head = `Authentication to ${this.where} (target \`${host.target}\`) failed: `;
    const asked = this.kbd.asked.length > 0 || this.pw.tries > 0;
    if (this.accepted || asked) {
      const parts: string[] = [];
      if (this.accepted)
        parts.push(
          `the server accepted ${this.accepted} and then asked for ${others.join(" or ") || "more"}`,
        );
      if (refused > 0) {
        const what =
          this.kbd.asked.length > 0 ? this.kbd.asked.map((t) => `"${t}"`).join(", ") : "a password";
        const said = this.kbd.said.length > 0 ? ` (the server said: ${this.kbd.said.at(-1)})` : "";
        parts.push(
          `it refused the answer to ${what} ${refused} time${refused === 1 ? "" : "s"}${said}: a wrong or expired code or password (one-time codes change every 30 s)`,
        );
      } else if (!asked) parts.push(`which ${this.whyNotAsked(others)}`);
      else parts.push("the exchange ended before an answer was accepted");
      return new SidecarError("SSH_AUTH", `${head}${parts.join("; ")}.${needs}`, {
        cause,
        data,
      });
    }
    if (gaps.names.length > 0) {
      // what cannot be done comes first: it is why the rest was refused
      return new SidecarError(
        "SSH_AUTH",
        `Authentication to ${this.where} (target \`${host.target}\`) needs what the built-in ssh2 transport cannot do: ${gaps.what.join("; ")}; ${USE_OPENSSH}. Without it, the server refused ${plan.described.join(", ") || "every method offered"}.`,
        { cause, data },
      );
    }
    if (plan.methods.length === 0 && plan.deferred.length === 0 && others.length === 0)
      return noWayToAuthenticate(host, plan);
    const err = authFailed(host, plan, cause);
    if (others.length === 0) return err;
    return new SidecarError(
      "SSH_AUTH",
      `${err.message} The server would also take ${others.join(" or ")}, which ${this.whyNotAsked(others)}.`,
      { cause, data },
    );
  }

  /** Why no question was asked for what the server wants. */
  private whyNotAsked(wants: string[]): string {
    if (this.host.batchMode) return "`BatchMode yes` in the ssh config forbids asking";
    if (!this.prompts) return "cannot be asked here (no prompt broker)";
    if (this.host.numberOfPasswordPrompts === 0)
      return "`NumberOfPasswordPrompts 0` in the ssh config forbids asking";
    if (wants.includes("keyboard-interactive") && !this.host.kbdInteractiveAuthentication)
      return "`KbdInteractiveAuthentication no` in the ssh config turns off";
    if (wants.includes("password") && !this.host.passwordAuthentication)
      return "`PasswordAuthentication no` in the ssh config turns off";
    return "the built-in ssh2 transport cannot do";
  }
}

function parseKey(data: Buffer, passphrase: string) {
  const r = ssh2().utils.parseKey(data, passphrase);
  if (r instanceof Error) return undefined;
  const key = Array.isArray(r) ? r[0] : r;
  return key && !(key instanceof Error) ? key : undefined;
}
