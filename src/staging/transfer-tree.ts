/**
 * Copies the files of a directory: one tar stream when many small files go to or come from a
 * pool, else per-file streams with bounded concurrency. Local and pool destinations commit every
 * file at the end (and remove a root they created on failure); object stores roll back new keys.
 */
import type { Readable } from "node:stream";
import { SidecarError } from "../errors.js";
import { copyFile, verify } from "./copy-file.js";
import { digestOf, HashingStream } from "./hashing.js";
import { prefetch } from "./prefetch.js";
import { precomputeSha256 } from "./same-content.js";
import type { Progress } from "./progress.js";
import { forEachLimit, withRetry } from "./retry.js";
import type { StagedWrite, Store, StoreEntry } from "./store.js";
import type { Location } from "./location.js";

export interface Endpoint {
  store: Store;
  /** absolute path, or object key */
  path: string;
  loc: Location;
}

export type TreeMethod = "tar-in" | "tar-out" | "tar" | "files";

/** Shape thresholds: a tar stream for at least this many files of at most this average size. */
export const TAR_MIN_FILES = 16;
export const TAR_MAX_AVG = 4 * 1024 * 1024;
/** files up to this size are read whole before being written (tar-out) */
const SMALL = 1024 * 1024;

export interface TreeJob {
  src: Endpoint;
  dst: Endpoint;
  files: StoreEntry[];
  /** empty directories to create */
  dirs: string[];
  dstExisted: boolean;
  progress: Progress;
  signal?: AbortSignal | undefined;
  pathOf: (store: Store, root: string, rel: string) => string;
}

export function chooseMethod(src: Store, dst: Store, files: StoreEntry[]): TreeMethod {
  const total = files.reduce((a, e) => a + e.size, 0);
  const small = files.length >= TAR_MIN_FILES && total / files.length <= TAR_MAX_AVG;
  if (small && dst.writeTree) return src.readTree ? "tar" : "tar-in";
  if (small && src.readTree) return "tar-out";
  return "files";
}

function concurrencyFor(src: Store, dst: Store): number {
  if (src.kind === "pool" || dst.kind === "pool") return 4;
  if (src.kind === "local" && dst.kind === "local") return 8;
  return 16;
}

export async function copyTree(job: TreeJob): Promise<{ bytes: number; method: TreeMethod }> {
  const method = chooseMethod(job.src.store, job.dst.store, job.files);
  if (job.files.length === 0) {
    await makeDirs(job);
    return { bytes: 0, method: "files" };
  }
  if (method === "tar" || method === "tar-in")
    return { bytes: await tarIn(job, method === "tar"), method };
  return { bytes: await perFile(job, method === "tar-out"), method };
}

async function makeDirs(job: TreeJob): Promise<void> {
  const { dst } = job;
  if (dst.store.kind === "s3" || dst.store.kind === "gcs") return;
  if (job.dirs.length === 0 && !job.dstExisted && job.files.length === 0)
    await dst.store.mkdir(dst.path);
  for (const d of job.dirs) await dst.store.mkdir(job.pathOf(dst.store, dst.path, d));
}

async function tarIn(job: TreeJob, fromTar: boolean): Promise<number> {
  const { src, dst, progress } = job;
  const byPath = new Map(job.files.map((e) => [e.path, e]));
  return await withRetry(
    async () => {
      let bytes = 0;
      let files = 0;
      let cleanupStreams = (): void => undefined;
      const writer = await dst.store.writeTree!(dst.path, { files: job.files, dirs: job.dirs });
      try {
        const sums = new Map<string, { sha256?: string; md5?: string }>();
        // source streams in flight, destroyed on failure (an open file handle must not leak)
        const open = new Set<Readable>();
        cleanupStreams = () => {
          for (const s of open) s.destroy();
        };
        const addOne = (path: string, data: Buffer | Readable): Promise<void> | undefined => {
          const entry = byPath.get(path);
          if (!entry)
            throw new SidecarError(
              "STAGING_UNSAFE_PATH",
              `the source stream holds \`${path}\`, which its listing did not`,
              { data: { entry: path } },
            );
          const md5 = entry.digests.md5 !== undefined && entry.digests.sha256 === undefined;
          files++;
          if (Buffer.isBuffer(data)) {
            // small files, whole: hash the buffer itself, and only to check the source's own claim
            // (the stream as a whole is hashed by the encoder and checked by the pool)
            const claims = entry.digests.sha256 !== undefined || entry.digests.md5 !== undefined;
            sums.set(
              path,
              claims
                ? {
                    sha256: digestOf(data, "sha256"),
                    ...(md5 ? { md5: digestOf(data, "md5") } : {}),
                  }
                : {},
            );
            bytes += data.length;
            progress.addBytes(data.length);
            progress.fileDone();
            return writer.add({ path, size: entry.size, mode: entry.mode, data });
          }
          const h = new HashingStream({
            md5,
            onBytes: (n) => {
              bytes += n;
              progress.addBytes(n);
            },
          });
          open.add(data);
          data.once("close", () => open.delete(data));
          h.hashFrom(data);
          return (async () => {
            await writer.add({ path, size: entry.size, mode: entry.mode, stream: h });
            await new Promise<void>((r) =>
              h.readableEnded || h.destroyed ? r() : h.once("end", () => r()),
            );
            if (h.sourceError !== undefined) throw h.sourceError;
            sums.set(path, h.digests());
            progress.fileDone();
          })();
        };
        if (fromTar) {
          for await (const it of src.store.readTree!(
            src.path,
            job.files.map((e) => e.path),
            { signal: job.signal },
          ))
            await addOne(it.path, it.stream);
        } else if (src.store.readWholeSync) {
          // files here: read small ones synchronously in one loop, no promise per file
          for (const e of job.files) {
            const full = job.pathOf(src.store, src.path, e.path);
            const p =
              e.size <= SMALL
                ? addOne(e.path, src.store.readWholeSync(full))
                : addOne(e.path, await src.store.read(full, { signal: job.signal, size: e.size }));
            if (p) await p;
          }
        } else {
          const items = prefetch(
            job.files,
            (e) => e.size,
            (e) =>
              src.store.read(job.pathOf(src.store, src.path, e.path), {
                signal: job.signal,
                size: e.size,
              }),
          );
          for await (const it of items) {
            const p = addOne(it.item.path, it.data);
            if (p) await p;
          }
        }
        for (const d of job.dirs) await writer.addDirectory(d);
        for (const e of job.files) {
          const got = sums.get(e.path);
          if (!got)
            throw new SidecarError("STAGING_FAILED", `\`${e.path}\` was listed but not sent`, {
              data: { entry: e.path },
            });
          // sizes were checked by the encoder; the source's own checksums here
          verify(`\`${e.path}\` at ${dst.store.url(dst.path)}`, e, got, e.size, {
            size: e.size,
            digests: {},
          });
        }
        await writer.finish();
        return bytes;
      } catch (err) {
        cleanupStreams();
        await writer.abort().catch(() => undefined);
        progress.rewind(bytes, files);
        throw err;
      }
    },
    { signal: job.signal },
  );
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

async function perFile(job: TreeJob, fromTar: boolean): Promise<number> {
  const { src, dst, progress } = job;
  const twoPhase = dst.store.kind === "local" || dst.store.kind === "pool";
  const staged: StagedWrite[] = [];
  const committed: string[] = [];
  let bytes = 0;
  const one = async (entry: StoreEntry, data?: Buffer | Readable): Promise<void> => {
    const dstPath = job.pathOf(dst.store, dst.path, entry.path);
    try {
      const r = await copyFile(
        src.store,
        job.pathOf(src.store, src.path, entry.path),
        entry,
        dst.store,
        dstPath,
        { progress, signal: job.signal, deferCommit: twoPhase, data, entry: entry.path },
      );
      bytes += r.bytes;
      if (r.staged) staged.push(r.staged);
      else committed.push(dstPath);
      progress.fileDone();
    } catch (err) {
      if (err instanceof SidecarError && err.data?.entry === undefined)
        throw new SidecarError(err.code, err.message, {
          cause: err,
          data: { ...err.data, entry: entry.path },
        });
      throw err;
    }
  };
  try {
    if (!twoPhase)
      await precomputeSha256(
        src.store,
        dst.store,
        job.files.map((e) => [job.pathOf(src.store, src.path, e.path), e]),
      );
    const limit = fromTar ? 16 : concurrencyFor(src.store, dst.store);
    if (fromTar) {
      const byPath = new Map(job.files.map((e) => [e.path, e]));
      const tree = src.store.readTree!(
        src.path,
        job.files.map((e) => e.path),
        { signal: job.signal },
      );
      await forEachLimit(
        (async function* () {
          for await (const it of tree) {
            const entry = byPath.get(it.path)!;
            // small files are read whole so that many can be written at once; large ones stream in turn
            // (wrapped: an async generator would await a bare promise it yields)
            if (entry.size <= SMALL) yield { task: one(entry, await collect(it.stream)) };
            else await one(entry, it.stream);
          }
        })(),
        limit,
        (t) => t.task,
      );
    } else {
      await forEachLimit(job.files, limit, (e) => one(e));
    }
    await forEachLimit(staged, 16, (s) => s.commit(s.digests));
    await makeDirs(job);
    return bytes;
  } catch (err) {
    await forEachLimit(staged, 16, (s) => s.abort().catch(() => undefined)).catch(() => undefined);
    if (twoPhase && !job.dstExisted) await dst.store.remove(dst.path).catch(() => undefined);
    if (!twoPhase)
      await forEachLimit(committed, 16, (k) => dst.store.remove(k).catch(() => undefined)).catch(
        () => undefined,
      );
    throw err;
  }
}
