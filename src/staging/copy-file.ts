/** Copies one file between any two stores: streamed, hashed on the way, verified, then committed. */
import { Readable } from "node:stream";
import { SidecarError } from "../errors.js";
import { digestsAgree, HashingStream } from "./hashing.js";
import type { Progress } from "./progress.js";
import { withRetry } from "./retry.js";
import type { Digests, StagedWrite, Store, StoreEntry } from "./store.js";

export interface CopyOptions {
  progress: Progress;
  signal?: AbortSignal | undefined;
  /** commit at once (default), or hand the staged write back for a later commit */
  deferCommit?: boolean;
  /** data already read (prefetched); used for the first attempt only */
  data?: Buffer | Readable | undefined;
  /** name for messages (relative path inside a directory) */
  entry?: string | undefined;
}

export interface CopyResult {
  bytes: number;
  sha256: string;
  staged?: StagedWrite;
}

function readableOf(data: Buffer | Readable): Readable {
  return Buffer.isBuffer(data) ? Readable.from([data], { objectMode: false }) : data;
}

/** Check what arrived against the source's claims and the stream's digests. */
export function verify(
  what: string,
  src: StoreEntry,
  streamed: Digests,
  bytes: number,
  staged: { size: number; digests: Digests },
): void {
  const fail = (why: string): never => {
    throw new SidecarError("STAGING_INTEGRITY", `Integrity check failed for ${what}: ${why}`, {
      data: { transient: true },
    });
  };
  if (bytes !== src.size)
    fail(
      `the source listed ${src.size} bytes but ${bytes} were read (did it change during the transfer?)`,
    );
  if (staged.size !== bytes)
    fail(`${bytes} bytes were sent but the destination stored ${staged.size}`);
  if (digestsAgree(src.digests, streamed) === false)
    fail("the data read does not match the source's own checksum");
  if (digestsAgree(staged.digests, streamed) === false)
    fail("the destination's checksum differs from the data sent");
}

export async function copyFile(
  src: Store,
  srcPath: string,
  entry: StoreEntry,
  dst: Store,
  dstPath: string,
  opts: CopyOptions,
): Promise<CopyResult> {
  let first = opts.data;
  return await withRetry(
    async () => {
      let counted = 0;
      const hasher = new HashingStream({
        md5: entry.digests.md5 !== undefined && entry.digests.sha256 === undefined,
        onBytes: (n) => {
          counted += n;
          opts.progress.addBytes(n);
        },
      });
      let staged: StagedWrite | undefined;
      let source: Readable | undefined;
      try {
        source =
          first !== undefined
            ? readableOf(first)
            : await src.read(srcPath, { signal: opts.signal, size: entry.size });
        first = undefined;
        hasher.hashFrom(source);
        staged = await dst.put(dstPath, hasher, {
          size: entry.size,
          mode: entry.mode,
          signal: opts.signal,
          digests: entry.digests,
        });
        if (hasher.sourceError !== undefined) throw hasher.sourceError;
        const streamed = hasher.digests();
        verify(dst.url(dstPath), entry, streamed, hasher.bytes, staged);
        if (!opts.deferCommit) {
          await staged.commit(streamed);
          return { bytes: hasher.bytes, sha256: streamed.sha256! };
        }
        const s = staged;
        return {
          bytes: hasher.bytes,
          sha256: streamed.sha256!,
          staged: { ...s, commit: () => s.commit(streamed) },
        };
      } catch (err) {
        hasher.destroy();
        source?.destroy();
        opts.progress.rewind(counted);
        await staged?.abort().catch(() => undefined);
        // the destination may only have seen its input end early: the source says why
        throw hasher.sourceError ?? err;
      }
    },
    { signal: opts.signal },
  );
}
