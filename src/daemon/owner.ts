/**
 * The process that owns a sidecar (`serve --owner-pid PID --owner-stdin`): when it is gone the
 * sidecar shuts down with everything it holds, as `run` does when COMMAND ends. Two signals, so
 * that a SIGKILLed owner is noticed: the end of a pipe on stdin whose write end only the owner
 * holds (at once, and portable), and the owner's pid polled (a forked child of the owner may
 * have inherited the write end and keep the pipe open).
 */
import { pidAlive } from "../rpc/connection-file.js";

export interface OwnerWatch {
  /** shut down when this process is gone */
  pid?: number;
  /** shut down when stdin reaches its end (the owner holds the pipe's write end) */
  stdin?: NodeJS.ReadableStream;
  /** how often the pid is checked @default 1000 */
  pollMs?: number;
}

/** Calls `onGone` once with the reason when the owner is gone; returns a function that stops watching. */
export function watchOwner(watch: OwnerWatch, onGone: (reason: string) => void): () => void {
  let done = false;
  const gone = (reason: string): void => {
    if (done) return;
    done = true;
    stop();
    onGone(reason);
  };
  let timer: NodeJS.Timeout | undefined;
  const { pid, stdin } = watch;
  if (pid !== undefined) {
    if (!pidAlive(pid)) setImmediate(() => gone(`owner process ${pid} is not running`));
    timer = setInterval(() => {
      if (!pidAlive(pid)) gone(`owner process ${pid} exited`);
    }, watch.pollMs ?? 1000);
    timer.unref();
  }
  const onEnd = (): void => gone("owner's pipe closed (stdin ended)");
  if (stdin) {
    stdin.on("end", onEnd);
    stdin.on("error", onEnd);
    // the owner writes nothing: read only to see the end
    stdin.on("data", () => undefined);
    stdin.resume();
  }
  function stop(): void {
    if (timer) clearInterval(timer);
    if (stdin) {
      stdin.off("end", onEnd);
      stdin.off("error", onEnd);
      stdin.pause();
    }
  }
  return () => {
    done = true;
    stop();
  };
}
