/** Exec session channels on an ssh2 Client. */
import type { Client, ClientChannel } from "ssh2";
import { SidecarError } from "../../errors.js";

/**
 * A fast command's exit-status can arrive in the same TCP read as the exec reply, i.e. before the
 * caller (behind an await) listens for `exit`. An `exit` nobody heard is emitted again just before
 * `close`, so that whoever listens by then hears it (SessionChannel's promise).
 */
function replayUnheardExit(channel: ClientChannel): void {
  let unheard: unknown[] | undefined;
  const onExit = (...args: unknown[]): void => {
    unheard = channel.listenerCount("exit") > 1 ? undefined : args;
  };
  channel.on("exit", onExit);
  channel.prependOnceListener("close", () => {
    channel.off("exit", onExit);
    if (unheard) channel.emit("exit", ...unheard);
  });
}

/** Open an exec channel on a client. */
export function openExec(client: Client, command: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    try {
      client.exec(command, (err, ch) => {
        if (err)
          return reject(
            new SidecarError("SSH_EXEC", `Cannot start a remote command: ${err.message}`, {
              cause: err,
            }),
          );
        replayUnheardExit(ch);
        resolve(ch);
      });
    } catch (err) {
      reject(
        new SidecarError(
          "SSH_CONNECT",
          `Cannot start a remote command: ${(err as Error).message}`,
          { cause: err },
        ),
      );
    }
  });
}
