/**
 * The sidecar's own SSH_ASKPASS program, for the openssh transport: `ssh` runs it with its
 * question as the one argument (SSH_ASKPASS_REQUIRE=force); it hands the question to the
 * sidecar over a private Unix socket (./askpass-server.ts) with the token of that ssh process,
 * and prints the answer the prompt broker got (exit 0), or says why there is none (exit 1).
 *
 * The program is `askpassMain` below, written to a file at start with this Node as its
 * interpreter: it is type-checked and linted here, and uses nothing but its arguments (no
 * imports, no outer names), so that its source text runs on its own.
 */

/** Env var naming the broker's socket, for the helper. */
export const ASKPASS_SOCKET_ENV = "PARSL_SIDECAR_ASKPASS_SOCKET";
/** Env var with the token that says which ssh (which host, whose call) is asking. */
export const ASKPASS_TOKEN_ENV = "PARSL_SIDECAR_ASKPASS_TOKEN";

interface HelperIo {
  require: (id: string) => unknown;
  argv: string[];
  env: Record<string, string | undefined>;
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  exit: (code: number) => void;
}

interface NetLike {
  createConnection(path: string): {
    setEncoding(e: string): void;
    on(ev: string, fn: (x: string & Error) => void): void;
    write(s: string): void;
    destroy(): void;
  };
}

/** The helper's whole program (see the module comment). */
export function askpassMain(io: HelperIo): void {
  const socketPath = io.env.PARSL_SIDECAR_ASKPASS_SOCKET;
  const token = io.env.PARSL_SIDECAR_ASKPASS_TOKEN;
  const say = (msg: string): void => {
    io.stderr.write(`parsl-sidecar askpass: ${msg}\n`);
    io.exit(1);
  };
  if (!socketPath || !token) {
    say("PARSL_SIDECAR_ASKPASS_SOCKET and _TOKEN are not set: only the sidecar runs this program");
    return;
  }
  const net = io.require("node:net") as NetLike;
  const sock = net.createConnection(socketPath);
  sock.setEncoding("utf8");
  let got = "";
  let done = false;
  sock.on("data", (chunk) => {
    got += chunk;
    const nl = got.indexOf("\n");
    if (nl < 0 || done) return;
    done = true;
    sock.destroy();
    let reply: { answer?: unknown; error?: unknown };
    try {
      reply = JSON.parse(got.slice(0, nl)) as typeof reply;
    } catch {
      say("the sidecar's reply is not JSON");
      return;
    }
    got = "";
    if (typeof reply.answer === "string") {
      io.stdout.write(`${reply.answer}\n`);
      reply.answer = "";
      io.exit(0);
      return;
    }
    say(typeof reply.error === "string" ? reply.error : "no answer");
  });
  sock.on("error", (err) => {
    if (!done) {
      done = true;
      say(`cannot reach the sidecar at ${socketPath}: ${err.message}`);
    }
  });
  sock.on("close", () => {
    if (!done) {
      done = true;
      say("the sidecar closed the connection without an answer");
    }
  });
  // write, not end: the connection stays open both ways, so that the sidecar sees this helper
  // go away (its ssh was killed) and withdraws the question
  sock.write(
    `${JSON.stringify({
      v: 1,
      token,
      prompt: io.argv[2] ?? "",
      // OpenSSH: "confirm" for a yes/no question, "none" for a notice that needs no answer
      hint: io.env.SSH_ASKPASS_PROMPT ?? "",
    })}\n`,
  );
}

/** The helper file's text: a Node script with `node` as its interpreter. */
export function askpassProgram(nodePath: string = process.execPath): string {
  return [
    `#!${nodePath}`,
    "// parsl-sidecar's SSH_ASKPASS helper (src/ssh/prompts/askpass-helper.ts); written by the sidecar.",
    '"use strict";',
    `(${askpassMain.toString()})({ require, argv: process.argv, env: process.env, stdout: process.stdout, stderr: process.stderr, exit: (c) => { process.exitCode = c; } });`,
    "",
  ].join("\n");
}
