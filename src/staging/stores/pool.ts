/**
 * A pool host over SSH (or `local`), driven through the Host interface: files stream over exec
 * channels (`tee tmp`, hashed there with openssl, renamed into place); trees of many small files
 * travel as one tar stream, extracted into a temporary directory and moved in whole. The
 * programs run there are src/remote/staging/*.sh (pool-commands.ts).
 */
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { SidecarError } from "../../errors.js";
import type { HostLease } from "../../ssh/host.js";
import { safeRelative, safeSymlinkTarget } from "../safe-path.js";
import {
  type DigestAlgo,
  type PutOptions,
  type StagedWrite,
  type Store,
  type StoreEntry,
  type TreePlan,
  type TreeReadItem,
  type TreeWriter,
  tempName,
} from "../store.js";
import { decodeTar } from "../tar/decoder.js";
import { TarEncoder } from "../tar/encoder.js";
import {
  ConnectionWatch,
  execOk,
  lostError,
  remoteError,
  spawnReader,
  spawnWithInput,
} from "./pool-proc.js";
import {
  commitCommand,
  digestCommand,
  listCommand,
  parseDigests,
  putCommand,
  statCommand,
  tarCommand,
  treeCommand,
  treeTemps,
} from "./pool-commands.js";
import { archiveLength } from "../tar/header.js";
import { sleep, within } from "../../util/timeout.js";

export class PoolStore implements Store {
  readonly kind = "pool" as const;
  /** temporary files and trees not yet known to be gone (a dropped connection can leave them) */
  private readonly pending = new Set<string>();

  private readonly watch: ConnectionWatch;

  constructor(readonly host: HostLease) {
    this.watch = new ConnectionWatch(host);
  }

  /** Remove a temporary path; it stays pending (for close) unless the pool confirms. */
  private async discard(tmp: string): Promise<void> {
    const res = await this.host
      .exec(`rm -rf -- ${shq(tmp)} ${shq(`${tmp}.failed`)}`, { timeoutMs: 30_000 })
      .catch(() => undefined);
    if (res?.exitCode === 0) this.pending.delete(tmp);
  }

  /** Try to remove a temporary path now without waiting; close() retries what is left. */
  private discardSoon(tmp: string): void {
    void this.discard(tmp);
  }

  /** Clean what is still pending, waiting for the connection to come back for a while. */
  async cleanup(patienceMs = 120_000): Promise<void> {
    const deadline = Date.now() + patienceMs;
    while (this.pending.size > 0 && Date.now() < deadline) {
      for (const tmp of [...this.pending]) await this.discard(tmp);
      if (this.pending.size > 0) await sleep(250);
    }
  }

  url(path: string): string {
    return `ssh://${this.host.target}${path}`;
  }

  async stat(path: string): Promise<StoreEntry | undefined> {
    const res = await execOk(this.host, `stat ${path}`, statCommand(path), { ok: [2] });
    if (res.exitCode === 2) {
      if (res.stdout.startsWith("dangling"))
        throw new SidecarError("STAGING_NOT_FOUND", `${this.url(path)} is a symlink to nothing`);
      return undefined;
    }
    const [kind, size, mtime, mode] = res.stdout.trim().split("|");
    const type =
      kind === "directory" ? "directory" : kind?.startsWith("regular") ? "file" : undefined;
    if (!type)
      throw new SidecarError(
        "STAGING_INVALID",
        `${this.url(path)} is a ${kind}, not a file or directory`,
      );
    return {
      path: "",
      type,
      size: type === "file" ? Number(size) : 0,
      mtimeMs: Number(mtime) * 1000,
      mode: parseInt(mode ?? "644", 8),
      digests: {},
    };
  }

  async list(root: string): Promise<StoreEntry[]> {
    const where = this.url(root);
    const res = await execOk(this.host, `list ${root}`, listCommand(root));
    const fields = res.stdout.split("\0");
    let i = 0;
    for (; i < fields.length && fields[i] !== "="; i += 2) {
      const name = fields[i]!.slice(2);
      safeSymlinkTarget(safeRelative(name, where), fields[i + 1] ?? "", where);
    }
    const out: StoreEntry[] = [];
    for (i++; i < fields.length; i++) {
      const f = fields[i]!;
      if (f === "") continue;
      const m = /^([fdx]) (\d+) ([\d.]+) ([0-7]+) ([\s\S]*)$/.exec(f);
      if (!m)
        throw new SidecarError(
          "STAGING_FAILED",
          `Unexpected listing line from ${where}: ${JSON.stringify(f.slice(0, 100))}`,
        );
      const path = safeRelative(m[5]!, where);
      if (m[1] === "x")
        throw new SidecarError(
          "STAGING_NOT_FOUND",
          `The symlink \`${path}\` in ${where} points to nothing`,
          { data: { entry: path } },
        );
      out.push({
        path,
        type: m[1] === "f" ? "file" : "directory",
        size: Number(m[2]),
        mtimeMs: Number(m[3]) * 1000,
        mode: parseInt(m[4]!, 8),
        digests: {},
      });
    }
    return out;
  }

  async read(path: string): Promise<Readable> {
    return (
      await spawnReader(
        this.host,
        `read ${path}`,
        `exec cat -- ${shq(path)}`,
        undefined,
        this.watch,
      )
    ).stream;
  }

  async put(path: string, data: Readable, opts: PutOptions = {}): Promise<StagedWrite> {
    const tmp = posix.join(posix.dirname(path), tempName(posix.basename(path)));
    this.pending.add(tmp);
    let stdout: string;
    try {
      ({ stdout } = await spawnWithInput(
        this.host,
        `write ${path}`,
        putCommand(path, tmp, opts.size, opts.mode),
        data,
        opts.signal,
        this.watch,
      ));
    } catch (err) {
      // the script removes its file on a short write, but not if it was killed with the connection;
      // the caller hears of the failure now, the file is removed once the connection allows
      this.discardSoon(tmp);
      throw err;
    }
    const m = /^size (\d+)\n([0-9a-f]{64})/.exec(stdout);
    if (!m) {
      await this.discard(tmp);
      throw new SidecarError(
        "STAGING_FAILED",
        `Unexpected reply writing ${this.url(path)}: ${JSON.stringify(stdout.slice(0, 200))}`,
      );
    }
    return {
      size: Number(m[1]),
      digests: { sha256: m[2]! },
      commit: async () => {
        await execOk(this.host, `rename into ${path}`, commitCommand(tmp, path));
        this.pending.delete(tmp);
      },
      abort: () => this.discard(tmp),
    };
  }

  async mkdir(path: string): Promise<void> {
    await execOk(this.host, `mkdir ${path}`, `mkdir -p -- ${shq(path)}`);
  }

  async remove(path: string): Promise<void> {
    try {
      await execOk(this.host, `remove ${path}`, `rm -rf -- ${shq(path)}`);
    } catch (err) {
      // retried by cleanup() when the connection is back
      if (!(err instanceof SidecarError) || !err.code.startsWith("STAGING_"))
        this.pending.add(path);
      throw err;
    }
  }

  async digest(paths: string[], algo: DigestAlgo): Promise<Map<string, string>> {
    if (paths.length === 0) return new Map();
    const res = await execOk(this.host, `${algo} of ${paths.length} file(s)`, digestCommand(algo), {
      stdin: Buffer.from(paths.map((p) => `${p}\0`).join("")),
    });
    return parseDigests(res.stdout, paths, algo);
  }

  async *readTree(root: string, names: string[]): AsyncIterable<TreeReadItem> {
    const { stream } = await spawnReader(
      this.host,
      `tar of ${root}`,
      tarCommand(root),
      Buffer.from(names.map((n) => `${n}\0`).join("")),
      this.watch,
    );
    try {
      yield* decodeTar(stream, this.url(root));
    } finally {
      stream.destroy();
    }
  }

  async writeTree(root: string, plan: TreePlan): Promise<TreeWriter> {
    const token = `${process.pid.toString(36)}${Math.random().toString(36).slice(2, 10)}`;
    const temps = treeTemps(root, token);
    const temporaries = [
      temps.inside,
      temps.beside,
      ...[temps.inside, temps.beside].flatMap((t) => [`${t}.fifo`, `${t}.sum`]),
    ];
    for (const t of temporaries) this.pending.add(t);
    const length = archiveLength(plan.files, plan.dirs);
    const proc = await this.host.spawn(treeCommand(root, token, length));
    const out: Buffer[] = [];
    const errChunks: Buffer[] = [];
    proc.stdout.on("data", (b: Buffer) => out.push(b));
    proc.stderr.on("data", (b: Buffer) => errChunks.push(b));
    const enc = new TarEncoder(proc.stdin);
    let failed: SidecarError | undefined;
    const lost = this.watch.lost(`writing the tree ${root}`);
    lost.promise.catch(() => proc.stdin.destroy());
    const noExit = { exitCode: null, signal: null };
    const exited = Promise.race([proc.exited, lost.promise.catch(() => noExit)]).then((exit) => {
      lost.dispose();
      const stderr = Buffer.concat(errChunks).toString("utf8");
      if (exit.exitCode === null && exit.signal === null)
        failed = lostError(this.host, `writing the tree ${root}`);
      else if (exit.exitCode === 4) {
        failed = new SidecarError(
          "STAGING_INTEGRITY",
          `Integrity check failed for the tree at ${this.url(root)}: the SHA-256 of the archive the pool received differs from the one sent (${Buffer.concat(out).toString("utf8").trim()})`,
          { data: { transient: true } },
        );
      } else if (exit.exitCode !== 0)
        failed = remoteError(this.host, `write the tree ${root}`, { ...exit, stderr });
      return exit;
    });
    const forget = (): void => {
      for (const t of temporaries) this.pending.delete(t);
    };
    // the pool side ending first (no space, permission) must not leave us waiting for a drain
    const ended = exited.then(() => {
      throw (
        failed ??
        new SidecarError(
          "STAGING_FAILED",
          `The pool side of the tree ${this.url(root)} ended before the stream did`,
        )
      );
    });
    ended.catch(() => undefined);
    const guard = async <T>(p: Promise<T>): Promise<T> => {
      try {
        return await Promise.race([p, ended]);
      } catch (err) {
        // the pool side may have failed first: its message is better
        await within<unknown>(exited, 300, undefined);
        throw failed ?? err;
      }
    };
    return {
      add: (item) => {
        if (failed) throw failed;
        if (item.data && item.data.length === item.size) {
          const p = enc.addBuffer(item.path, item.data, undefined, item.mode);
          return p && guard(p);
        }
        return guard(
          enc.addFile(item.path, item.size, item.data ?? item.stream!, undefined, item.mode),
        );
      },
      addDirectory: async (path: string) => {
        await guard(enc.addDirectory(path));
      },
      finish: async () => {
        const sha = await guard(enc.finishArchive());
        if (enc.written !== length) {
          throw new SidecarError(
            "STAGING_INTEGRITY",
            `The archive for ${this.url(root)} came to ${enc.written} bytes, not the ${length} planned (a source file changed size?)`,
            { data: { transient: true } },
          );
        }
        // the pool side exits once it has all: wait for that, not for the guard's early-exit rule
        const closing = enc.close(Buffer.from(`${sha}\n`)).catch(() => undefined);
        await exited;
        // after a failure (a lost connection) the last write may never be acknowledged: don't wait for it
        if (failed) throw failed; // the pool side removed its temporaries; close() checks
        await closing;
        forget();
      },
      abort: async () => {
        // never wait on a connection that may be going up and down: close() finishes the cleanup
        proc.stdin.destroy();
        void proc.kill("SIGTERM").catch(() => undefined);
        void exited.then(() => {
          for (const t of temporaries) this.discardSoon(t);
        });
      },
    };
  }

  async close(): Promise<void> {
    await this.cleanup();
    this.watch.close();
    this.host.release();
  }
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
