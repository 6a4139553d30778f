/**
 * The one interface every staging store implements (this machine, a pool over SSH, S3, GCS),
 * so that any store can be copied to any other by the same transfer code.
 */
import type { Readable } from "node:stream";

/** Checksums of a file's content: hex for sha256/md5, base64 for crc32c, S3's ETag as is. */
export interface Digests {
  sha256?: string;
  md5?: string;
  crc32c?: string;
  /** S3 ETag without quotes; `<md5>-<parts>` for multipart uploads */
  etag?: string;
}

export type DigestAlgo = "sha256" | "md5";

export interface StoreEntry {
  /** relative to the listed root, `/`-separated (always safe: see safe-path.ts); "" for stat */
  path: string;
  type: "file" | "directory";
  size: number;
  mtimeMs?: number;
  /** permission bits where the store has them (local, pool) */
  mode?: number;
  /** what the store knows without reading the data */
  digests: Digests;
}

/** Data that reached the destination under a temporary name; nobody sees it until commit. */
export interface StagedWrite {
  size: number;
  /** digests the destination computed (or checked) of what it stored */
  digests: Digests;
  /** make it visible under its final name; `digests` are the stream's, kept as metadata where the store can */
  commit(digests: Digests): Promise<void>;
  /** remove every trace of it */
  abort(): Promise<void>;
}

export interface PutOptions {
  /** expected size when known (S3 picks part sizes from it) */
  size?: number | undefined;
  /** permission bits to give the file (local, pool) */
  mode?: number | undefined;
  /** digests known before the data is sent (kept as metadata by object stores) */
  digests?: Digests | undefined;
  signal?: AbortSignal | undefined;
}

/** One file given to a TreeWriter: a stream (consumed before the next) or the whole content. */
export interface TreeItem {
  path: string;
  size: number;
  mode?: number | undefined;
  /** the content as a stream (consume it before the next item) ... */
  stream?: Readable | undefined;
  /** ... or whole */
  data?: Buffer | undefined;
}

/** A file read out of a tree stream, in order: consume `stream` before asking for the next. */
export interface TreeReadItem {
  path: string;
  size: number;
  stream: Readable;
}

/** What a tree stream will hold, known before it starts (its length is fixed up front). */
export interface TreePlan {
  files: Array<{ path: string; size: number }>;
  /** empty directories */
  dirs: string[];
}

/**
 * A whole tree written in one stream (the pool's tar over an exec channel), holding exactly the
 * planned files (any order) and directories. Nothing is visible until `finish`: the destination
 * checks the stream's SHA-256 and tar's success, and only then puts the tree in place.
 */
export interface TreeWriter {
  /** a promise only when the stream pushes back (whole files) or for streams */
  add(item: TreeItem): Promise<void> | undefined;
  /** an empty directory */
  addDirectory(path: string): Promise<void>;
  /** resolves once the tree is verified and in place */
  finish(): Promise<void>;
  abort(): Promise<void>;
}

export interface Store {
  readonly kind: "local" | "pool" | "s3" | "gcs";
  /** the URL of `path` for messages (no credentials) */
  url(path: string): string;
  /** undefined when nothing is there; directories on object stores exist when a key is under them */
  stat(path: string): Promise<StoreEntry | undefined>;
  /** every file under `root`, recursively, with relative names checked by safe-path */
  list(root: string): Promise<StoreEntry[]>;
  read(
    path: string,
    opts?: { signal?: AbortSignal | undefined; size?: number | undefined },
  ): Promise<Readable>;
  /** a small file whole, synchronously, when that is cheap (this machine's disk) */
  readWholeSync?(path: string): Buffer;
  put(path: string, data: Readable, opts?: PutOptions): Promise<StagedWrite>;
  mkdir(path: string): Promise<void>;
  /** remove a file or a tree (cleanup) */
  remove(path: string): Promise<void>;
  /** compute digests by reading the data (local and pool); absent for object stores */
  digest?(paths: string[], algo: DigestAlgo): Promise<Map<string, string>>;
  /** stream many files as one tar (pool only) */
  readTree?(
    root: string,
    names: string[],
    opts?: { signal?: AbortSignal | undefined },
  ): AsyncIterable<TreeReadItem>;
  writeTree?(root: string, plan: TreePlan): Promise<TreeWriter>;
  close(): Promise<void>;
}

/** A temporary sibling name for `base`: hidden, unique, recognisable. */
export function tempName(base: string): string {
  return `.${base}.psc-${process.pid.toString(36)}${Math.random().toString(36).slice(2, 10)}.tmp`;
}
