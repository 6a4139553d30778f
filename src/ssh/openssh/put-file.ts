/** putFile: `cat > PATH` in a session whose stdin is the file (the master reads it itself). */
import { open as openFile } from "node:fs/promises";
import { SidecarError } from "../../errors.js";
import { shellQuote } from "../../util/shell-quote.js";
import type { OpenSshSession } from "./session.js";

/** opens a session running `command` with `stdinFd` as its stdin */
export type OpenWithStdin = (
  command: string,
  stdinFd: number,
) => Promise<{ channel: OpenSshSession; release: () => void }>;

/** How a session ended: from session.sh's last line; undefined when the connection dropped. */
function ending(
  channel: OpenSshSession,
): Promise<{ code: number | null; signal?: string } | undefined> {
  return new Promise((resolve) => {
    let st: { code: number | null; signal?: string } | undefined;
    channel.on("exit", (code: number | null, signal?: string) => {
      st = signal ? { code, signal } : { code };
    });
    channel.on("close", () => resolve(st));
  });
}

export async function putFileThrough(
  open: OpenWithStdin,
  target: string,
  localPath: string,
  remotePath: string,
): Promise<void> {
  const fh = await openFile(localPath, "r").catch((err: Error) => {
    throw new SidecarError("SSH_EXEC", `Cannot read ${localPath}: ${err.message}`, {
      cause: err,
    });
  });
  try {
    const { channel, release } = await open(`cat > ${shellQuote(remotePath)}`, fh.fd);
    let stderr = "";
    channel.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
    channel.resume();
    const status = await ending(channel);
    release();
    if (status?.code !== 0)
      throw new SidecarError(
        !status ? "SSH_CONNECT" : "SSH_EXEC",
        `Cannot copy ${localPath} to ${target}:${remotePath}: ${
          !status
            ? "the connection was lost"
            : stderr.trim() ||
              (status.signal ? `killed by SIG${status.signal}` : `exit code ${status.code}`)
        }`,
        { data: { target, path: remotePath } },
      );
  } finally {
    await fh.close();
  }
}
