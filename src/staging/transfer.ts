/**
 * One transfer, file or directory, between any two stores: plan (what exists, what is identical),
 * choose by shape (a tar stream for many small files to or from a pool, else per-file streams
 * with bounded concurrency), copy, verify, and commit so that nothing partial is left behind.
 */
import { setMaxListeners } from "node:events";
import { SidecarError } from "../errors.js";
import { copyFile } from "./copy-file.js";
import { stagingFailure } from "./failures.js";
import { Progress, type ProgressSink } from "./progress.js";
import { withRetry } from "./retry.js";
import { identicalFiles, precomputeSha256 } from "./same-content.js";
import type { Store, StoreEntry } from "./store.js";
import { copyTree, type Endpoint, type TreeMethod } from "./transfer-tree.js";

export type { Endpoint };

export interface TransferSpec {
  id: string;
  src: Endpoint;
  dst: Endpoint;
  type: "file" | "directory";
  /** the item's name (a key of inputs_dict/outputs_dict) for messages */
  item?: string | undefined;
  onProgress?: ProgressSink | undefined;
  signal?: AbortSignal | undefined;
}

export interface TransferResult {
  bytes: number;
  files: number;
  skipped: number;
  duration_ms: number;
  method: "file" | "skip" | TreeMethod;
  sha256?: string;
}

function joinPath(store: Store, root: string, rel: string): string {
  if (rel === "") return root;
  if (store.kind === "s3" || store.kind === "gcs")
    return root === "" || root.endsWith("/") ? `${root}${rel}` : `${root}/${rel}`;
  return root === "/" ? `/${rel}` : `${root}/${rel}`;
}

export async function runTransfer(spec: TransferSpec): Promise<TransferResult> {
  const started = performance.now();
  // many concurrent requests listen on the same signal
  if (spec.signal) setMaxListeners(0, spec.signal);
  const progress = new Progress(spec.id, spec.onProgress);
  const ctx = {
    item: spec.item,
    src: spec.src.store.url(spec.src.path),
    dst: spec.dst.store.url(spec.dst.path),
  };
  try {
    const res =
      spec.type === "file"
        ? await transferFile(spec, progress)
        : await transferDirectory(spec, progress);
    progress.report();
    return { ...res, duration_ms: Math.round(performance.now() - started) };
  } catch (err) {
    throw stagingFailure(err, {
      ...ctx,
      entry: (err as SidecarError).data?.entry as string | undefined,
    });
  } finally {
    progress.stop();
  }
}

/** Metadata calls retried like data (a dropped connection or a throttled request). */
function retrying<T>(spec: TransferSpec, fn: () => Promise<T>): Promise<T> {
  return withRetry(fn, { signal: spec.signal });
}

async function statSource(spec: TransferSpec): Promise<StoreEntry> {
  const entry = await retrying(spec, () => spec.src.store.stat(spec.src.path));
  if (!entry)
    throw new SidecarError(
      "STAGING_NOT_FOUND",
      `the source ${spec.src.store.url(spec.src.path)} does not exist`,
    );
  if (entry.type !== spec.type) {
    throw new SidecarError(
      "STAGING_INVALID",
      `the source is a ${entry.type} but the transfer's type is \`${spec.type}\`; set "type": "${entry.type}"`,
    );
  }
  return entry;
}

async function transferFile(
  spec: TransferSpec,
  progress: Progress,
): Promise<Omit<TransferResult, "duration_ms">> {
  const { src, dst } = spec;
  const entry = await statSource(spec);
  const dstEntry = await retrying(spec, () => dst.store.stat(dst.path));
  if (dstEntry?.type === "directory")
    throw new SidecarError(
      "STAGING_INVALID",
      `a directory is in the way at ${dst.store.url(dst.path)}`,
    );
  progress.setTotals(entry.size, 1);
  if (dstEntry) {
    const same = await retrying(spec, () =>
      identicalFiles(
        [""],
        { store: src.store, pathOf: () => src.path, entries: new Map([["", entry]]) },
        { store: dst.store, pathOf: () => dst.path, entries: new Map([["", dstEntry]]) },
      ),
    );
    if (same.has("")) {
      progress.fileDone(true, entry.size);
      const sha = entry.digests.sha256 ?? dstEntry.digests.sha256;
      return { bytes: 0, files: 0, skipped: 1, method: "skip", ...(sha ? { sha256: sha } : {}) };
    }
  }
  await retrying(spec, () => precomputeSha256(src.store, dst.store, [[src.path, entry]]));
  const r = await copyFile(src.store, src.path, entry, dst.store, dst.path, {
    progress,
    signal: spec.signal,
  });
  progress.fileDone();
  return { bytes: r.bytes, files: 1, skipped: 0, method: "file", sha256: r.sha256 };
}

async function transferDirectory(
  spec: TransferSpec,
  progress: Progress,
): Promise<Omit<TransferResult, "duration_ms">> {
  const { src, dst } = spec;
  await statSource(spec);
  const listed = await retrying(spec, () => src.store.list(src.path));
  const files = listed.filter((e) => e.type === "file");
  const dirs = listed.filter((e) => e.type === "directory").map((e) => e.path);
  const dstRoot = await retrying(spec, () => dst.store.stat(dst.path));
  if (dstRoot?.type === "file")
    throw new SidecarError("STAGING_INVALID", `a file is in the way at ${dst.store.url(dst.path)}`);
  const existing = dstRoot ? await retrying(spec, () => dst.store.list(dst.path)) : [];
  const srcMap = new Map(files.map((e) => [e.path, e]));
  const dstMap = new Map(existing.map((e) => [e.path, e]));
  const same =
    dstMap.size === 0
      ? new Set<string>()
      : await retrying(spec, () =>
          identicalFiles(
            [...srcMap.keys()],
            { store: src.store, pathOf: (r) => joinPath(src.store, src.path, r), entries: srcMap },
            { store: dst.store, pathOf: (r) => joinPath(dst.store, dst.path, r), entries: dstMap },
          ),
        );
  const toSend = files.filter((e) => !same.has(e.path));
  progress.setTotals(
    files.reduce((a, e) => a + e.size, 0),
    files.length,
  );
  for (const e of files) if (same.has(e.path)) progress.fileDone(true, e.size);
  const missingDirs = dirs.filter((d) => !dstMap.has(d));
  const res = await copyTree({
    src,
    dst,
    files: toSend,
    dirs: missingDirs,
    dstExisted: dstRoot !== undefined,
    progress,
    signal: spec.signal,
    pathOf: joinPath,
  });
  return { bytes: res.bytes, files: toSend.length, skipped: same.size, method: res.method };
}
