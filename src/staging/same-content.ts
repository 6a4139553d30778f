/** Decides which files are already identical at the destination (size, then a shared checksum). */
import { digestsAgree } from "./hashing.js";
import { forEachLimit } from "./retry.js";
import type { DigestAlgo, Digests, Store, StoreEntry } from "./store.js";

export interface Side {
  store: Store;
  /** absolute path or key of each relative name */
  pathOf(rel: string): string;
  entries: Map<string, StoreEntry>;
}

async function enrich(rels: string[], side: Side): Promise<void> {
  if (side.store.digest) return;
  const poor = rels.filter((r) => {
    const d = side.entries.get(r)!.digests;
    return d.sha256 === undefined && d.md5 === undefined && d.crc32c === undefined;
  });
  await forEachLimit(poor, 16, async (r) => {
    const st = await side.store.stat(side.pathOf(r));
    if (st) Object.assign(side.entries.get(r)!.digests, st.digests);
  });
}

/** The algorithm both sides can provide for this pair, reading data where needed. */
function pickAlgo(src: Store, s: Digests, dst: Store, d: Digests): DigestAlgo | undefined {
  const can = (store: Store, have: Digests, algo: DigestAlgo): boolean =>
    have[algo] !== undefined || store.digest !== undefined;
  if (d.sha256 !== undefined || dst.digest) {
    if (can(src, s, "sha256")) return "sha256";
  }
  if (d.md5 !== undefined && can(src, s, "md5")) return "md5";
  if (s.md5 !== undefined && dst.digest) return "md5";
  return undefined;
}

/**
 * Relative names (of `names`) whose destination file has the same size and checksum as the
 * source. Checksums not known from the listings are computed in batches by the stores.
 */
export async function identicalFiles(names: string[], src: Side, dst: Side): Promise<Set<string>> {
  const same = new Set<string>();
  const need: Record<DigestAlgo, string[]> = { sha256: [], md5: [] };
  const candidates = names.filter((rel) => {
    const s = src.entries.get(rel);
    const d = dst.entries.get(rel);
    return s !== undefined && d !== undefined && d.type === "file" && s.size === d.size;
  });
  // object listings lack metadata (S3 multipart objects keep their checksum there): ask for it
  await enrich(candidates, src);
  await enrich(candidates, dst);
  for (const rel of candidates) {
    const s = src.entries.get(rel)!;
    const d = dst.entries.get(rel)!;
    const agree = digestsAgree(s.digests, d.digests);
    if (agree === true) same.add(rel);
    if (agree !== undefined) continue;
    const algo = pickAlgo(src.store, s.digests, dst.store, d.digests);
    if (algo) need[algo].push(rel);
  }
  for (const algo of ["sha256", "md5"] as const) {
    const rels = need[algo];
    if (rels.length === 0) continue;
    const fill = async (side: Side): Promise<void> => {
      const missing = rels.filter((r) => side.entries.get(r)!.digests[algo] === undefined);
      if (missing.length === 0 || !side.store.digest) return;
      const got = await side.store.digest(
        missing.map((r) => side.pathOf(r)),
        algo,
      );
      for (const r of missing) {
        const v = got.get(side.pathOf(r));
        if (v) side.entries.get(r)!.digests[algo] = v;
      }
    };
    await Promise.all([fill(src), fill(dst)]);
    for (const r of rels) {
      const a = src.entries.get(r)!.digests[algo];
      if (a !== undefined && a === dst.entries.get(r)!.digests[algo]) same.add(r);
    }
  }
  return same;
}

/** S3 multipart objects carry a SHA-256 only if it is known before the upload starts: compute it. */
export async function precomputeSha256(
  src: Store,
  dst: Store,
  items: Array<[string, StoreEntry]>,
): Promise<void> {
  if (dst.kind !== "s3" || !src.digest) return;
  const big = items.filter(([, e]) => e.size > 8 * 1024 * 1024 && e.digests.sha256 === undefined);
  if (big.length === 0) return;
  const got = await src.digest(
    big.map(([p]) => p),
    "sha256",
  );
  for (const [p, e] of big) {
    const v = got.get(p);
    if (v) e.digests.sha256 = v;
  }
}
