/**
 * A pool host over SSH (or `local`), driven through the Host interface: files stream over exec
 * channels (`head -c N > tmp`, hashed there with openssl, renamed into place); trees of many
 * small files travel as one tar stream, extracted into a temporary directory and moved in whole.
 */
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { SidecarError } from "../../errors.js";
import type { HostLease } from "../../ssh/host.js";
import { safeRelative, safeSymlinkTarget } from "../safe-path.js";
import { type DigestAlgo, type PutOptions, type StagedTree, type StagedWrite, type Store, type StoreEntry, type TreeItem, type TreeWriter, tempName } from "../store.js";
import { decodeTar } from "../tar/decoder.js";
import { TarEncoder } from "../tar/encoder.js";
import { execOk, lostError, remoteError, spawnReader, spawnWithInput } from "./pool-proc.js";
import { commitScript, commitTreeScript, digestScript, listScript, parseDigests, putScript, statScript, tarScript, untarScript } from "./pool-scripts.js";

export class PoolStore implements Store {
  readonly kind = "pool" as const;
  /** temporary files and trees not yet known to be gone (a dropped connection can leave them) */
  private readonly pending = new Set<string>();

  constructor(readonly host: HostLease) {}

  /** Remove a temporary path; it stays pending (for close) unless the pool confirms. */
  private async discard(tmp: string): Promise<void> {
    const res = await this.host.exec(`rm -rf -- ${shq(tmp)}`, { timeoutMs: 30_000 }).catch(() => undefined);
    if (res?.exitCode === 0) this.pending.delete(tmp);
  }

  /** Clean what is still pending, waiting for the connection to come back for a while. */
  async cleanup(patienceMs = 120_000): Promise<void> {
    const deadline = Date.now() + patienceMs;
    while (this.pending.size > 0 && Date.now() < deadline) {
      for (const tmp of [...this.pending]) await this.discard(tmp);
      if (this.pending.size > 0) await new Promise((r) => setTimeout(r, 250));
    }
  }

  url(path: string): string {
    return `ssh://${this.host.target}${path}`;
  }

  async stat(path: string): Promise<StoreEntry | undefined> {
    const res = await execOk(this.host, `stat ${path}`, statScript(path), { ok: [2] });
    if (res.exitCode === 2) {
      if (res.stdout.startsWith("dangling")) throw new SidecarError("STAGING_NOT_FOUND", `${this.url(path)} is a symlink to nothing`);
      return undefined;
    }
    const [kind, size, mtime, mode] = res.stdout.trim().split("|");
    const type = kind === "directory" ? "directory" : kind?.startsWith("regular") ? "file" : undefined;
    if (!type) throw new SidecarError("STAGING_INVALID", `${this.url(path)} is a ${kind}, not a file or directory`);
    return { path: "", type, size: type === "file" ? Number(size) : 0, mtimeMs: Number(mtime) * 1000, mode: parseInt(mode ?? "644", 8), digests: {} };
  }

  async list(root: string): Promise<StoreEntry[]> {
    const where = this.url(root);
    const res = await execOk(this.host, `list ${root}`, listScript(root));
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
      if (!m) throw new SidecarError("STAGING_FAILED", `Unexpected listing line from ${where}: ${JSON.stringify(f.slice(0, 100))}`);
      const path = safeRelative(m[5]!, where);
      if (m[1] === "x") throw new SidecarError("STAGING_NOT_FOUND", `The symlink \`${path}\` in ${where} points to nothing`, { data: { entry: path } });
      out.push({ path, type: m[1] === "f" ? "file" : "directory", size: Number(m[2]), mtimeMs: Number(m[3]) * 1000, mode: parseInt(m[4]!, 8), digests: {} });
    }
    return out;
  }

  async read(path: string): Promise<Readable> {
    return (await spawnReader(this.host, `read ${path}`, `exec cat -- ${shq(path)}`)).stream;
  }

  async put(path: string, data: Readable, opts: PutOptions = {}): Promise<StagedWrite> {
    const tmp = posix.join(posix.dirname(path), tempName(posix.basename(path)));
    this.pending.add(tmp);
    let stdout: string;
    try {
      ({ stdout } = await spawnWithInput(this.host, `write ${path}`, putScript(path, tmp, opts.size, opts.mode), data, opts.signal));
    } catch (err) {
      // the script removes its file on a short write, but not if it was killed with the connection
      await this.discard(tmp);
      throw err;
    }
    const m = /^size (\d+)\n([0-9a-f]{64})/.exec(stdout);
    if (!m) {
      await this.discard(tmp);
      throw new SidecarError("STAGING_FAILED", `Unexpected reply writing ${this.url(path)}: ${JSON.stringify(stdout.slice(0, 200))}`);
    }
    return {
      size: Number(m[1]),
      digests: { sha256: m[2]! },
      commit: async () => {
        await execOk(this.host, `rename into ${path}`, commitScript(tmp, path));
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
      if (!(err instanceof SidecarError) || !err.code.startsWith("STAGING_")) this.pending.add(path);
      throw err;
    }
  }

  async digest(paths: string[], algo: DigestAlgo): Promise<Map<string, string>> {
    if (paths.length === 0) return new Map();
    const res = await execOk(this.host, `${algo} of ${paths.length} file(s)`, digestScript(algo), { stdin: Buffer.from(paths.map((p) => `${p}\0`).join("")) });
    return parseDigests(res.stdout, paths, algo);
  }

  async *readTree(root: string, names: string[]): AsyncIterable<TreeItem> {
    const { stream } = await spawnReader(this.host, `tar of ${root}`, tarScript(root), Buffer.from(names.map((n) => `${n}\0`).join("")));
    try {
      yield* decodeTar(stream, this.url(root));
    } finally {
      stream.destroy();
    }
  }

  async writeTree(root: string): Promise<TreeWriter> {
    const exists = (await this.stat(root).catch(() => undefined))?.type === "directory";
    const tmp = exists ? posix.join(root, tempName("tree")) : posix.join(posix.dirname(root), tempName(posix.basename(root)));
    this.pending.add(tmp);
    const proc = await this.host.spawn(untarScript(tmp));
    const errChunks: Buffer[] = [];
    proc.stderr.on("data", (b: Buffer) => errChunks.push(b));
    proc.stdout.resume();
    const enc = new TarEncoder(proc.stdin);
    const names: string[] = [];
    const cleanup = (): Promise<void> => this.discard(tmp);
    let failed: SidecarError | undefined;
    const exited = proc.exited.then((exit) => {
      if (exit.exitCode === null && exit.signal === null) failed = lostError(this.host, `extract into ${root}`);
      else if (exit.exitCode !== 0) failed = remoteError(this.host, `extract into ${root}`, { ...exit, stderr: Buffer.concat(errChunks).toString("utf8") });
      return exit;
    });
    const guard = async <T>(p: Promise<T>): Promise<T> => {
      try {
        return await p;
      } catch (err) {
        // the extracting tar may have failed first (no space, permission): its message is better
        await Promise.race([exited, new Promise((r) => setTimeout(r, 300))]);
        throw failed ?? err;
      }
    };
    return {
      add: async (item) => {
        if (failed) throw failed;
        names.push(item.path);
        await guard(enc.addFile(item.path, item.size, item.stream, undefined, item.mode));
      },
      addDirectory: async (path: string) => {
        await guard(enc.addDirectory(path));
      },
      finish: async (): Promise<StagedTree> => {
        await guard(enc.end());
        await exited;
        if (failed) {
          await cleanup();
          throw failed;
        }
        let digests: Map<string, string>;
        try {
          const res = await execOk(this.host, `sha256 of ${names.length} file(s)`, digestScript("sha256", tmp), { stdin: Buffer.from(names.map((n) => `./${n}\0`).join("")) });
          digests = parseDigests(res.stdout, names.map((n) => `./${n}`), "sha256");
        } catch (err) {
          await cleanup();
          throw err;
        }
        return {
          digests: new Map(names.map((n) => [n, { sha256: digests.get(`./${n}`)! }])),
          commit: async () => {
            await execOk(this.host, `move the tree into ${root}`, commitTreeScript(tmp, root, exists));
            this.pending.delete(tmp);
          },
          abort: cleanup,
        };
      },
      abort: async () => {
        proc.stdin.destroy();
        await proc.kill("SIGTERM").catch(() => undefined);
        await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 5000))]);
        await cleanup();
      },
    };
  }

  async close(): Promise<void> {
    await this.cleanup();
    this.host.release();
  }
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
