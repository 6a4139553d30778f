// A CLI command on a real terminal answers what the TOTP login node asks because of it: the
// terminal is a pseudo-terminal made by `script` (util-linux), the code is typed when the prompt
// shows, and it is not echoed. Through a sidecar (`ssh exec`, the RPC path) and in the command's
// own process (`stage`); without a terminal the command does not answer.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Daemon } from "../../src/daemon/daemon.js";
import { SSH_CONFIG_ENV } from "../../src/ssh/config.js";
import { PROMPT_TIMEOUT_ENV } from "../../src/ssh/prompts/broker.js";
import { stopAllAfterAll, warnSkip } from "../testbed/hooks.js";
import { startOtpNode, type OtpNode } from "../testbed/otp-node.js";
import { makeTempDir } from "../testbed/registry.js";
import { sshdEntry, writeSshConfig } from "../testbed/ssh-config.js";

stopAllAfterAll();

const repo = join(import.meta.dirname, "..", "..");
const tsx = join(repo, "node_modules", ".bin", "tsx");
const entry = join(repo, "src", "cli", "entry.ts");
const root = process.getuid?.() === 0;
const why = "the TOTP node writes a PAM service file in /etc/pam.d, which needs root";
if (!root) warnSkip("the CLI answering the TOTP node's prompt", why);

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

interface Run {
  code: number | null;
  output: string;
}

/**
 * Run the CLI with `args` on a pseudo-terminal (`script -qefc`), typing `answer()` followed by
 * Enter each time `prompt` shows on it.
 */
function onTerminal(
  args: string[],
  env: Record<string, string>,
  prompt: RegExp,
  answer: () => string,
): Promise<Run> {
  const command = [tsx, entry, ...args].map(quote).join(" ");
  const child = spawn("script", ["-qefc", command, "/dev/null"], {
    env: { ...process.env, ...env, TERM: "dumb" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let output = "";
  let answered = 0;
  const onData = (b: Buffer): void => {
    output += b.toString("utf8");
    const seen = output.split(prompt).length - 1;
    if (seen > answered) {
      answered = seen;
      child.stdin.write(`${answer()}\r`);
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  return new Promise((resolve) => {
    child.on("close", (code) => resolve({ code, output }));
  });
}

describe.skipIf(!root)(`the CLI on a terminal${root ? "" : ` (SKIPPED: ${why})`}`, () => {
  let n: OtpNode;
  let daemon: Daemon;
  let dir: string;
  let env: Record<string, string>;
  const typed: string[] = [];
  const code = (): string => {
    const c = n.code();
    typed.push(c);
    return c;
  };

  beforeAll(async () => {
    n = await startOtpNode();
    dir = makeTempDir("cli-prompts");
    const extra = { IdentitiesOnly: "yes", StrictHostKeyChecking: "yes", IdentityAgent: "none" };
    const config = writeSshConfig(dir, [
      sshdEntry("otp-a", n.sshd, { extra }),
      sshdEntry("otp-b", n.sshd, { extra }),
      sshdEntry("otp-c", n.sshd, { extra }),
      sshdEntry("otp-d", n.sshd, { extra }),
    ]);
    env = {
      [SSH_CONFIG_ENV]: config,
      PARSL_SIDECAR_RUNTIME_DIR: join(dir, "cli-rt"),
      PARSL_SIDECAR_STATE_DIR: join(dir, "cli-state"),
    };
    process.env[SSH_CONFIG_ENV] = config;
    process.env[PROMPT_TIMEOUT_ENV] = "5s";
    daemon = await Daemon.start({
      runtimeDir: join(dir, "run"),
      stateDir: join(dir, "state"),
      stderrLevel: "silent",
    });
    delete process.env[PROMPT_TIMEOUT_ENV];
  }, 30000);
  afterAll(async () => {
    await daemon?.close();
    delete process.env[SSH_CONFIG_ENV];
    await n?.stop();
  }, 30000);

  it("`ssh exec` asks on its terminal, without echo, and sends the code back", {
    timeout: 60000,
  }, async () => {
    const r = await onTerminal(
      ["ssh", "exec", "--connection", daemon.connectionFile, "otp-a", "--", "echo", "in-$USER"],
      env,
      /Verification code: /,
      code,
    );
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain(
      `parsl-sidecar: ${n.sshd.user}@${n.sshd.host}:${n.sshd.port} (target \`otp-a\`) asks:`,
    );
    expect(r.output).toContain(`(${n.sshd.user}@${n.sshd.host}) Verification code: `);
    expect(r.output).toContain(`in-${n.sshd.user}`);
    // not echoed
    for (const c of typed) expect(r.output).not.toContain(c);
    const log = readFileSync(join(dir, "run", "sidecar.log"), "utf8");
    expect(log).toMatch(/ssh prompt answered/);
  });

  it("`stage` (SSH in its own process) asks on its terminal too", { timeout: 60000 }, async () => {
    const src = join(dir, "payload.txt");
    writeFileSync(src, "staged through a code\n");
    const remote = join(dir, "remote-copy.txt");
    const r = await onTerminal(
      ["stage", "--quiet", src, `ssh://otp-b${remote}`],
      env,
      /Verification code: /,
      code,
    );
    expect(r.code, r.output).toBe(0);
    expect(readFileSync(remote, "utf8")).toBe("staged through a code\n");
    for (const c of typed) expect(r.output).not.toContain(c);
  });

  it("`run` answers on its terminal what COMMAND's Python calls cause", {
    timeout: 90000,
  }, async () => {
    const python = join(repo, ".venv", "bin", "python");
    const script = [
      "import parsl_sidecar",
      "c = parsl_sidecar.connect()",
      "print(c.call('ssh.exec', target='otp-d', command='echo from-the-job')['stdout'], end='')",
    ].join("; ");
    const r = await onTerminal(
      ["run", "--quiet", "--", python, "-c", script],
      env,
      /Verification code: /,
      code,
    );
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain("(target `otp-d`) asks:");
    expect(r.output).toContain("from-the-job");
    for (const c of typed) expect(r.output).not.toContain(c);
  });

  it("without a terminal, the command does not answer: SSH_AUTH after the time limit", {
    timeout: 60000,
  }, async () => {
    const child = spawn(
      tsx,
      [entry, "ssh", "exec", "--connection", daemon.connectionFile, "otp-c", "--", "true"],
      { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let err = "";
    child.stderr.on("data", (b: Buffer) => {
      err += b.toString("utf8");
    });
    const exit = await new Promise<number | null>((r) => child.on("close", r));
    expect(exit).toBe(1);
    expect(err).toMatch(/"Verification code:".*no one answered within 5s/);
    expect(err).not.toMatch(/asks:/);
  });
});
