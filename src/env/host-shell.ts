/** Small shell helpers over a Host: checked exec, ~ paths, file upload, atomic writes, temp dirs. */
import { readFile } from "node:fs/promises";
import { SidecarError, type ErrorCode } from "../errors.js";
import { shellQuote, type ExecOptions, type ExecResult, type Host } from "../ssh/host.js";
import type { SshLease } from "../ssh/connections.js";

export { shellQuote };

/** A shell word for a host path: `~` and `~/x` expand to $HOME on the host, the rest is quoted. */
export function pathWord(p: string): string {
  if (p === "~") return '"$HOME"';
  if (p.startsWith("~/")) return `"$HOME"/${shellQuote(p.slice(2))}`;
  return shellQuote(p);
}

/** The last `n` lines of a text, for error messages. */
export function tail(text: string, n = 15): string {
  const lines = text.trimEnd().split("\n");
  return lines.slice(-n).join("\n");
}

/** Run a command and throw `code` with its output when it fails. */
export async function execChecked(
  host: Host,
  command: string,
  what: string,
  opts: ExecOptions & { code?: ErrorCode } = {},
): Promise<ExecResult> {
  const { code, ...execOpts } = opts;
  const res = await host.exec(command, execOpts);
  if (res.exitCode !== 0) {
    const out = tail(`${res.stderr}\n${res.stdout}`.trim());
    const how = res.timedOut
      ? "timed out"
      : res.signal
        ? `was killed by ${res.signal}`
        : `exited with ${res.exitCode}`;
    throw new SidecarError(
      code ?? "ENV_FAILED",
      `${what} on ${host.target} ${how}${out ? `:\n${out}` : ""}`,
      { data: { target: host.target, exit_code: res.exitCode } },
    );
  }
  return res;
}

/** Write `content` to `path` on the host atomically (temp file in the same directory + mv). */
export async function writeHostFile(
  host: Host,
  path: string,
  content: string | Buffer,
  mode?: string,
): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const chmod = mode ? ` && chmod ${mode} ${shellQuote(tmp)}` : "";
  await execChecked(
    host,
    `cat > ${shellQuote(tmp)}${chmod} && mv -f ${shellQuote(tmp)} ${shellQuote(path)} || { rm -f ${shellQuote(tmp)}; exit 1; }`,
    `Writing ${path}`,
    { stdin: content },
  );
}

/** Copy a local file to the host (an SSH lease's putFile: SFTP or `cat`; `cp` here). */
export async function putFile(host: Host, localPath: string, remotePath: string): Promise<void> {
  // an SSH lease (isSshLease without loading the pool, which the CLI's local path does not need)
  if (!host.isLocal && "connection" in host) {
    try {
      await (host as SshLease).connection.putFile(localPath, remotePath);
    } catch (err) {
      // the copy failed (it names its path): the environment's failure; a lost connection or a
      // refused session stays the SSH error it is, as for every command
      const copy = err instanceof SidecarError && err.data?.path === remotePath;
      if (err instanceof SidecarError && !copy) throw err;
      throw new SidecarError(
        "ENV_FAILED",
        copy
          ? err.message
          : `Cannot copy ${localPath} to ${host.target}:${remotePath}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    return;
  }
  if (host.isLocal) {
    // same machine: let cp do it (streams, keeps memory flat for large installers)
    await execChecked(
      host,
      `cp -- ${shellQuote(localPath)} ${shellQuote(remotePath)}`,
      `Copying ${localPath} to ${remotePath}`,
    );
    return;
  }
  await execChecked(
    host,
    `cat > ${shellQuote(remotePath)}`,
    `Copying ${localPath} to ${remotePath}`,
    { stdin: await readFile(localPath) },
  );
}

/** A private temp directory on the host; `remove()` deletes it (only it: it is ours). */
export async function hostTempDir(host: Host): Promise<{ path: string; remove(): Promise<void> }> {
  const res = await execChecked(
    host,
    'mktemp -d "${TMPDIR:-/tmp}/parsl-sidecar-env.XXXXXX"',
    "Creating a temp directory",
  );
  const path = res.stdout.trim();
  if (!path.startsWith("/"))
    throw new SidecarError(
      "ENV_FAILED",
      `mktemp on ${host.target} printed \`${path}\`, not a path`,
    );
  return {
    path,
    remove: async () => {
      await host.exec(`rm -rf -- ${shellQuote(path)}`).catch(() => undefined);
    },
  };
}
