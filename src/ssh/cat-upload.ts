/**
 * A file copied to a host through `cat > PATH` on one session channel: what SshLink.putFile does
 * for small files, and where a transport has no SFTP. Transport-neutral (it uses only SshLink).
 */
import { createReadStream } from "node:fs";
import { SidecarError } from "../errors.js";
import { shellQuote } from "../util/shell-quote.js";
import type { SshLink } from "./link.js";
import { closeWhenGone } from "./ssh-exec.js";

/** stderr kept for the error message */
const STDERR_KEEP = 4096;

/** Stream `localPath` into `cat > remotePath` on `link`; waits up to `waitMs` for a session. */
export async function catUpload(
  link: Pick<SshLink, "exec" | "onEnded" | "target">,
  waitMs: number,
  localPath: string,
  remotePath: string,
): Promise<void> {
  const what = `Cannot copy ${localPath} to ${link.target}:${remotePath}`;
  // `cat > 'PATH'` means the same in sh, csh and fish: the login shell runs it as it is
  const { channel, release, generation } = await link.exec(
    `cat > ${shellQuote(remotePath)}`,
    waitMs,
  );
  closeWhenGone(channel, (cb) => link.onEnded(generation, cb));
  channel.once("close", release);
  let stderr = "";
  let exit: { code: number | null; signal: string | undefined } | undefined;
  await new Promise<void>((resolve, reject) => {
    channel.stderr.on("data", (b: Buffer) => {
      stderr = (stderr + b.toString("utf8")).slice(-STDERR_KEEP);
    });
    channel.on("exit", (code: number | null, signal?: string) => {
      exit = { code: typeof code === "number" ? code : null, signal };
    });
    channel.resume();
    channel.on("close", () => {
      if (!exit)
        return reject(
          new SidecarError(
            "SSH_CONNECT",
            `The connection to \`${link.target}\` was lost while copying ${localPath} to ${remotePath}`,
            { data: { target: link.target } },
          ),
        );
      if (exit.code === 0) return resolve();
      const how = exit.signal ? `was killed by ${exit.signal}` : `exited with ${exit.code}`;
      const out = stderr.trim();
      reject(
        new SidecarError("SSH_EXEC", `${what}: \`cat\` ${how}${out ? `: ${out}` : ""}`, {
          data: { target: link.target, path: remotePath, exit_code: exit.code },
        }),
      );
    });
    const file = createReadStream(localPath);
    file.on("error", (err) => {
      channel.close();
      reject(
        new SidecarError("SSH_EXEC", `${what}: ${err.message}`, {
          cause: err,
          data: { target: link.target, path: remotePath },
        }),
      );
    });
    file.pipe(channel);
  });
}
