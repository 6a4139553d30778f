/**
 * The user's own SSH_ASKPASS program, used as OpenSSH uses it (readpass.c, read_passphrase):
 * a display (DISPLAY or WAYLAND_DISPLAY not empty) allows it; SSH_ASKPASS_REQUIRE=force uses it
 * always, even without a display; `prefer` uses it before the terminal when a display allows it;
 * `never` never; unset, it is used when there is no terminal to ask (here: no one attends the
 * prompt) and a display allows it. The program gets the prompt as its one argument and prints
 * the answer; a non-zero exit is no answer.
 */
import { spawn } from "node:child_process";

export type AskpassUse = "now" | "if-unattended" | "never";

export interface AskpassPolicy {
  /** the program, when one may be used */
  program?: string;
  use: AskpassUse;
  /** why, for messages */
  why: string;
}

/** What SSH_ASKPASS, SSH_ASKPASS_REQUIRE and the display say, as OpenSSH reads them. */
export function askpassPolicy(env: NodeJS.ProcessEnv, ownHelper?: string): AskpassPolicy {
  const program = env.SSH_ASKPASS;
  if (!program) return { use: "never", why: "SSH_ASKPASS is not set" };
  if (ownHelper && program === ownHelper)
    return { use: "never", why: "SSH_ASKPASS is the sidecar's own helper" };
  const display = Boolean(env.DISPLAY) || Boolean(env.WAYLAND_DISPLAY);
  const require = (env.SSH_ASKPASS_REQUIRE ?? "").toLowerCase();
  if (require === "never") return { use: "never", why: "SSH_ASKPASS_REQUIRE=never" };
  if (require === "force") return { program, use: "now", why: "SSH_ASKPASS_REQUIRE=force" };
  if (!display)
    return {
      use: "never",
      why: "there is no display (DISPLAY, WAYLAND_DISPLAY) and SSH_ASKPASS_REQUIRE is not force",
    };
  if (require === "prefer") return { program, use: "now", why: "SSH_ASKPASS_REQUIRE=prefer" };
  return { program, use: "if-unattended", why: "SSH_ASKPASS with a display" };
}

/** Largest answer read from the program, as OpenSSH's 1024-byte buffer. */
const MAX_ANSWER = 1023;

/**
 * Run the program for one prompt. Resolves with its answer (up to the first CR or LF), or
 * rejects with why there is none. `signal` kills it (another way answered first).
 */
export function runAskpass(
  program: string,
  text: string,
  opts: { confirm?: boolean; signal?: AbortSignal; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const env = { ...(opts.env ?? process.env) };
    if (opts.confirm) env.SSH_ASKPASS_PROMPT = "confirm";
    else delete env.SSH_ASKPASS_PROMPT;
    const child = spawn(program, [text], { stdio: ["ignore", "pipe", "pipe"], env });
    const chunks: Buffer[] = [];
    let size = 0;
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => {
      if (size < MAX_ANSWER) chunks.push(b);
      size += b.length;
    });
    child.stderr.on("data", (b: Buffer) => {
      if (stderr.length < 2000) stderr += b.toString("utf8");
    });
    const onAbort = (): void => {
      child.kill("SIGTERM");
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    child.once("error", (err) => {
      opts.signal?.removeEventListener("abort", onAbort);
      reject(new Error(`SSH_ASKPASS program ${program} could not be started: ${err.message}`));
    });
    child.once("close", (code, signal) => {
      opts.signal?.removeEventListener("abort", onAbort);
      const out = Buffer.concat(chunks).subarray(0, MAX_ANSWER).toString("utf8");
      // the buffers held the answer: overwrite them before they are dropped
      for (const c of chunks) c.fill(0);
      if (code !== 0) {
        const how = signal ? `was killed by ${signal}` : `exited with ${code}`;
        const said = stderr.trim() ? `: ${stderr.trim().split("\n").slice(-1)[0]}` : "";
        reject(new Error(`SSH_ASKPASS program ${program} ${how}${said}`));
        return;
      }
      resolve(out.split(/[\r\n]/, 1)[0] ?? "");
    });
  });
}
