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

/** One file of a tree streamed in order (a tar stream): consume `stream` before the next. */
export interface TreeItem {
  path: string;
  size: number;
  mode?: number | undefined;
  stream: Readable;
}

/** A whole tree written in one stream (the pool's tar over an exec channel). */
export interface TreeWriter {
  add(item: TreeItem): Promise<void>;
  /** an empty directory */
  addDirectory(path: string): Promise<void>;
  /** end the stream; the tree is stored under a temporary name */
  finish(): Promise<StagedTree>;
  abort(): Promise<void>;
}

export interface StagedTree {
  /** relative path -> what the destination computed */
  digests: Map<string, Digests>;
  commit(): Promise<void>;
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
  read(path: string, opts?: { signal?: AbortSignal | undefined; size?: number | undefined }): Promise<Readable>;
  put(path: string, data: Readable, opts?: PutOptions): Promise<StagedWrite>;
  mkdir(path: string): Promise<void>;
  /** remove a file or a tree (cleanup) */
  remove(path: string): Promise<void>;
  /** compute digests by reading the data (local and pool); absent for object stores */
  digest?(paths: string[], algo: DigestAlgo): Promise<Map<string, string>>;
  /** stream many files as one tar (pool only) */
  readTree?(root: string, names: string[], opts?: { signal?: AbortSignal | undefined }): AsyncIterable<TreeItem>;
  writeTree?(root: string, opts?: { signal?: AbortSignal | undefined }): Promise<TreeWriter>;
  close(): Promise<void>;
}

/** A temporary sibling name for `base`: hidden, unique, recognisable. */
export function tempName(base: string): string {
  return `.${base}.psc-${process.pid.toString(36)}${Math.random().toString(36).slice(2, 10)}.tmp`;
}
