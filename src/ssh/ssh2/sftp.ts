/** SFTP over ssh2: one session per large file, written with fastPut's parallel requests. */
import type { Client, SFTPWrapper } from "ssh2";
import { SidecarError } from "../../errors.js";

/** A new SFTP session on `client` (it ends when the caller ends it). */
export function openSftp(client: Client, target: string): Promise<SFTPWrapper> {
  return new Promise<SFTPWrapper>((resolve, reject) =>
    client.sftp((err, s) =>
      err
        ? reject(
            new SidecarError(
              "SSH_EXEC",
              `Cannot open an SFTP session on \`${target}\`: ${err.message}`,
              { cause: err },
            ),
          )
        : resolve(s),
    ),
  );
}

/** Copy `localPath` to `remotePath` over `sftp`, then end the session (`release` frees its slot). */
export async function sftpPut(
  sftp: SFTPWrapper,
  release: () => void,
  target: string,
  localPath: string,
  remotePath: string,
): Promise<void> {
  sftp.on("close", release);
  try {
    await new Promise<void>((res, rej) =>
      sftp.fastPut(localPath, remotePath, (err) => (err ? rej(err) : res())),
    );
  } catch (err) {
    throw new SidecarError(
      "SSH_EXEC",
      `Cannot copy ${localPath} to ${target}:${remotePath} over SFTP: ${(err as Error).message}`,
      { cause: err, data: { target, path: remotePath } },
    );
  } finally {
    sftp.end();
  }
}
