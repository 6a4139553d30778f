/**
 * Reads a tar stream as a sequence of files with safe relative names. Directories are implied by
 * file names; links, devices and anything leaving the root are refused with STAGING_UNSAFE_PATH.
 */
import { Readable } from "node:stream";
import { SidecarError } from "../../errors.js";
import { safeRelative } from "../safe-path.js";
import type { TreeReadItem } from "../store.js";
import { ByteReader } from "./byte-reader.js";
import { BLOCK, decodeHeader, padding, parsePax } from "./header.js";

/**
 * Each yielded item's `stream` must be consumed (or destroyed) before asking for the next one;
 * an unconsumed rest is skipped.
 */
export async function* decodeTar(
  source: Readable | AsyncIterable<Buffer>,
  where: string,
): AsyncGenerator<TreeReadItem> {
  const r = new ByteReader(source);
  let longName: string | undefined;
  let paxPath: string | undefined;
  let paxSize: number | undefined;
  try {
    for (;;) {
      const block = await r.read(BLOCK);
      if (block.length === 0) return;
      if (block.length < BLOCK)
        throw new SidecarError(
          "STAGING_FAILED",
          `The tar stream from ${where} ended inside a header`,
        );
      const h = decodeHeader(block);
      if (h === undefined) return;
      const size = paxSize ?? h.size;
      const body = async (): Promise<Buffer> => {
        const parts: Buffer[] = [];
        for await (const c of r.chunks(size)) parts.push(c);
        await r.skip(padding(size));
        return Buffer.concat(parts);
      };
      if (h.type === "pax") {
        const rec = parsePax(await body());
        if (rec.has("path")) paxPath = rec.get("path");
        if (rec.has("size")) paxSize = Number(rec.get("size"));
        continue;
      }
      if (h.type === "pax-global") {
        await body();
        continue;
      }
      if (h.type === "gnu-longname") {
        longName = (await body()).toString("utf8").replace(/\0+$/, "");
        continue;
      }
      const rawName = paxPath ?? longName ?? h.name;
      paxPath = longName = paxSize = undefined;
      if (h.type === "directory") {
        if (rawName.replace(/^(\.\/)+/, "").replace(/\/+$/, "") !== "" && rawName !== ".")
          safeRelative(rawName, where);
        await r.skip(size + padding(size));
        continue;
      }
      if (h.type !== "file") {
        const what =
          h.type === "symlink" || h.type === "hardlink" || h.type === "gnu-longlink"
            ? `a link to \`${h.linkname}\``
            : "not a regular file";
        throw new SidecarError(
          "STAGING_UNSAFE_PATH",
          `Refusing the entry \`${rawName}\` in ${where}: it is ${what}; only regular files and directories are staged`,
          { data: { entry: rawName, where } },
        );
      }
      const path = safeRelative(rawName, where);
      let remaining = size;
      let inflight: Promise<Buffer> | undefined;
      const stream = Readable.from(
        (async function* () {
          while (remaining > 0) {
            inflight = r.readSome(remaining);
            const c = await inflight;
            inflight = undefined;
            if (c.length === 0)
              throw new SidecarError(
                "STAGING_FAILED",
                `The tar stream from ${where} ended inside \`${path}\``,
              );
            remaining -= c.length;
            yield c;
          }
        })(),
        { objectMode: false, highWaterMark: 1 << 20 },
      );
      yield { path, size, stream };
      if (remaining > 0) {
        stream.destroy();
        // the body's own continuation subtracts what an in-flight read returns, before this one runs
        if (inflight) await (inflight as Promise<Buffer>).catch(() => undefined);
        await new Promise<void>((r) => setImmediate(r));
        await r.skip(remaining);
      }
      await r.skip(padding(size));
    }
  } finally {
    await r.close();
  }
}
