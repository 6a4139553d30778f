/**
 * A lock beside an environment on its host, held by a small shell process for as long as we
 * hold it: `flock` on `<parent>/.<name>.parsl-sidecar.lock` when the host has flock (the kernel
 * drops it if the holder dies), else an atomic `mkdir` of `<...>.lock.d` with the holder's host
 * and pid inside and stale-lock detection (a dead pid on the same host, or no heartbeat for 2 min).
 * Releasing closes the holder's stdin; losing the connection does the same. The holder also
 * watches the tool running under the lock: if its stdin closes while a tool's process group is
 * registered (the sidecar died or lost the connection), it stops that group before letting go,
 * so that no orphaned conda or uv keeps writing into an environment somebody else now locks.
 */
import { createInterface } from "node:readline";
import { SidecarError } from "../errors.js";
import type { Host, HostProcess } from "../ssh/host.js";
import { shellQuote } from "./host-shell.js";

export interface LockOptions {
  /** give up after this long with ENV_LOCKED @default 1_800_000 (30 min: conda installs are slow) */
  timeoutMs?: number;
  /** use the mkdir lock even when flock exists (tests) */
  mechanism?: "auto" | "flock" | "mkdir";
  /** called once when another holder is seen, with its `host pid` */
  onWait?: (owner: string) => void;
  /** extra environment for the holder (tests restrict PATH) */
  env?: Record<string, string>;
}

export interface HeldLock {
  path: string;
  mechanism: "flock" | "mkdir";
  /** stop this process group on the host if we go away while holding the lock */
  watch(pgid: number): void;
  /** the watched group ended normally */
  unwatch(): void;
  release(): Promise<void>;
}

/** Reads watch/unwatch lines until stdin closes, then stops a group still watched. */
const WATCH_LOOP = `W=""
while IFS= read -r line; do case "$line" in "watch "*) W=\${line#watch };; unwatch) W="";; esac; done
[ -n "$W" ] && kill -TERM -"$W" 2>/dev/null`;

/** The lock path for a directory: `<parent>/.<basename>.parsl-sidecar.lock`. */
export function lockPathFor(dir: string): string {
  const clean = dir.replace(/\/+$/, "");
  const i = clean.lastIndexOf("/");
  return `${clean.slice(0, i) || "/"}/.${clean.slice(i + 1)}.parsl-sidecar.lock`.replace(
    /^\/\//,
    "/",
  );
}

function holderScript(lock: string, mechanism: "auto" | "flock" | "mkdir"): string {
  const L = shellQuote(lock);
  return `
L=${L}; H=$(hostname 2>/dev/null || uname -n); ME=$$
D=$(dirname "$L")
mkdir -p "$D" 2>/dev/null; [ -d "$D" ] && [ -w "$D" ] || { echo "ERROR cannot write to $D (for the lock $L)"; exit 3; }
if [ ${shellQuote(mechanism)} != mkdir ] && command -v flock >/dev/null 2>&1; then
  ( : >>"$L" ) 2>/dev/null || { echo "ERROR cannot create $L"; exit 3; }
  exec 9>>"$L"
  if ! flock -n 9; then echo "WAIT $(head -c 200 "$L" 2>/dev/null)"; flock 9 || exit 3; fi
  echo "$H $ME" > "$L"
  echo "LOCKED flock"
  ${WATCH_LOOP}
  exit 0
fi
[ ${shellQuote(mechanism)} = flock ] && { echo "ERROR flock is not installed"; exit 3; }
LD="$L.d"; waited=0
while ! mkdir "$LD" 2>/dev/null; do
  O=$(cat "$LD/owner" 2>/dev/null); OH=\${O% *}; OP=\${O##* }
  if [ -n "$O" ] && [ "$OH" = "$H" ] && ! kill -0 "$OP" 2>/dev/null; then
    echo "STALE $O"; mv "$LD" "$LD.stale.$ME" 2>/dev/null && rm -rf "$LD.stale.$ME"; continue
  fi
  if [ -n "$(find "$LD" -maxdepth 0 -mmin +2 2>/dev/null)" ] && [ -z "$(find "$LD/beat" -mmin -2 2>/dev/null)" ]; then
    echo "STALE old $O"; mv "$LD" "$LD.stale.$ME" 2>/dev/null && rm -rf "$LD.stale.$ME"; continue
  fi
  [ $waited = 0 ] && echo "WAIT $O"; waited=1
  sleep 1
done
trap 'rm -rf "$LD"' EXIT
trap 'exit 1' HUP INT TERM
echo "$H $ME" > "$LD/owner.tmp" && mv "$LD/owner.tmp" "$LD/owner"
touch "$LD/beat"
( while sleep 5; do kill -0 "$ME" 2>/dev/null || exit 0; touch "$LD/beat" 2>/dev/null || exit 0; done ) </dev/null >/dev/null 2>&1 &
B=$!
echo "LOCKED mkdir"
${WATCH_LOOP}
kill $B 2>/dev/null
exit 0
`;
}

/** Take the lock at `lock` on `host`; resolves when held. */
export async function acquireLock(
  host: Host,
  lock: string,
  opts: LockOptions = {},
): Promise<HeldLock> {
  const timeoutMs = opts.timeoutMs ?? 1_800_000;
  const proc: HostProcess = await host.spawn(
    holderScript(lock, opts.mechanism ?? "auto"),
    opts.env ? { env: opts.env } : {},
  );
  proc.stderr.resume();
  const lines = createInterface({ input: proc.stdout });
  let owner = "";
  return await new Promise<HeldLock>((resolve, reject) => {
    let done = false;
    const finish = (err: Error | undefined, held?: HeldLock): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        proc.kill("SIGTERM").catch(() => undefined);
        proc.stdin.destroy();
        reject(err);
      } else resolve(held!);
    };
    const timer = setTimeout(() => {
      finish(
        new SidecarError(
          "ENV_LOCKED",
          `Another ensure holds ${lock} on ${host.target}${owner ? ` (${owner})` : ""} and did not finish within ${Math.round(timeoutMs / 1000)} s; try again later, or remove the lock if its holder is gone`,
          { data: { target: host.target, lock, owner } },
        ),
      );
    }, timeoutMs);
    lines.on("line", (line) => {
      if (line.startsWith("WAIT")) {
        owner = line.slice(5).trim();
        opts.onWait?.(owner);
      } else if (line.startsWith("ERROR")) {
        finish(
          new SidecarError(
            "ENV_FAILED",
            `Cannot lock the environment on ${host.target}: ${line.slice(6)}`,
            { data: { target: host.target, lock } },
          ),
        );
      } else if (line.startsWith("LOCKED")) {
        const mechanism = line.endsWith("flock") ? "flock" : "mkdir";
        let released: Promise<void> | undefined;
        finish(undefined, {
          path: mechanism === "flock" ? lock : `${lock}.d`,
          mechanism,
          watch: (pgid) => {
            if (Number.isInteger(pgid) && pgid > 1 && !proc.stdin.writableEnded)
              proc.stdin.write(`watch ${pgid}\n`);
          },
          unwatch: () => {
            if (!proc.stdin.writableEnded) proc.stdin.write("unwatch\n");
          },
          release: () => {
            released ??= (async () => {
              lines.close();
              // stdout may be the same duplex as stdin (an SSH channel): keep it flowing so it can close
              proc.stdout.resume();
              proc.stdin.end();
              const t = setTimeout(() => proc.kill("SIGTERM").catch(() => undefined), 10_000);
              await proc.exited.catch(() => undefined);
              clearTimeout(t);
            })();
            return released;
          },
        });
      }
    });
    void proc.exited.then((r) => {
      finish(
        new SidecarError(
          "ENV_FAILED",
          `The lock holder for ${lock} on ${host.target} ended before taking the lock (exit ${r.exitCode ?? r.signal})`,
          { data: { target: host.target, lock } },
        ),
      );
    });
  });
}
