/** Running the user's `ssh` for a short answer (`-V`, `-G`, `-O check/forward/cancel`). */
import { spawn } from "node:child_process";
import { SidecarError } from "../../errors.js";

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** `ssh ARGS` with no stdin; resolves with its output once it exits or `timeoutMs` passed. */
export function runSsh(
  sshPath: string,
  args: string[],
  opts: { timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(sshPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: opts.env ?? process.env,
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString("utf8")));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs);
    child.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(missingSsh(sshPath, err));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

/** The error for an `ssh` that cannot be started. */
export function missingSsh(sshPath: string, err: NodeJS.ErrnoException): SidecarError {
  const why =
    err.code === "ENOENT"
      ? `no \`${sshPath}\` was found${sshPath.includes("/") ? "" : " on PATH"}`
      : `\`${sshPath}\` cannot be run (${err.message})`;
  return new SidecarError(
    "SSH_CONFIG",
    `The openssh transport needs the OpenSSH client, but ${why}. Install OpenSSH (Debian: openssh-client) or use the ssh2 transport.`,
    { cause: err, data: { ssh: sshPath } },
  );
}

/** The lines ssh wrote, without its debug lines and the `\r` it ends some with. */
export function messageLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.replace(/\r$/, "").trim())
    .filter((l) => l !== "" && !l.startsWith("debug"));
}
