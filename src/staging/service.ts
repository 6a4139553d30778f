/**
 * The staging service: runs transfers for RPC callers (bounded in number), records them, and
 * reports progress as `transfer.progress` / `transfer.done` events and as progress messages.
 */
import { randomBytes } from "node:crypto";
import { SidecarError } from "../errors.js";
import type { EventBus } from "../events.js";
import type { Logger } from "../util/logger.js";
import { stagingFailure } from "./failures.js";
import { formatLocation, parseLocation } from "./location.js";
import type { ProgressSnapshot } from "./progress.js";
import { StoreFactory, type OpenedStore, type StoreFactoryOptions } from "./stores/open.js";
import { withRetry } from "./retry.js";
import { runTransfer, type TransferResult } from "./transfer.js";

export interface TransferParams {
  src: string;
  dst: string;
  /** `auto` looks at the source */
  type?: "file" | "directory" | "auto" | undefined;
  /** replaces `{cwd}` in URLs */
  cwd?: string | undefined;
  /** where bare absolute paths live: `local` or an ssh target */
  host?: string | undefined;
  item?: string | undefined;
  /** caller's name for the owner of pool leases */
  owner?: string | undefined;
  /** also accept `TARGET:/abs/path` and bare local paths (the CLI) */
  cliForms?: boolean | undefined;
}

export interface TransferRecord {
  id: string;
  item: string | null;
  src: string;
  dst: string;
  type: string;
  state: "queued" | "running" | "done" | "failed";
  started_at: string;
  bytes: number;
  total_bytes: number;
  files: number;
  total_files: number;
  skipped: number;
  rate_bps: number;
  duration_ms: number | null;
  method: string | null;
  error: { code: string; message: string } | null;
}

export interface StagingServiceOptions extends StoreFactoryOptions {
  events?: EventBus | undefined;
  log?: Logger | undefined;
  /** transfers running at once; more wait in order @default $PARSL_SIDECAR_STAGING_CONCURRENCY or 8 */
  concurrency?: number;
  /** finished transfers kept for list_transfers @default 200 */
  keep?: number;
}

export class StagingService {
  readonly stores: StoreFactory;
  private readonly records = new Map<string, TransferRecord>();
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly limit: number;
  private closed = false;
  private readonly abort = new AbortController();
  /** cleanups of failed transfers (temporaries a dropped connection left), finishing in the background */
  private readonly cleanups = new Set<Promise<void>>();

  constructor(private readonly opts: StagingServiceOptions = {}) {
    this.stores = new StoreFactory(opts);
    this.limit = opts.concurrency ?? (Number(process.env.PARSL_SIDECAR_STAGING_CONCURRENCY) || 8);
  }

  private async slot(): Promise<() => void> {
    if (this.running >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    return () => {
      this.running--;
      this.waiting.shift()?.();
    };
  }

  /** Run one transfer; `onProgress` gets throttled snapshots. */
  async transfer(
    p: TransferParams,
    onProgress?: (s: ProgressSnapshot) => void,
    signal?: AbortSignal,
  ): Promise<TransferResult & { id: string; src: string; dst: string }> {
    if (this.closed) throw new SidecarError("SHUTTING_DOWN", "The staging service is closed");
    const srcLoc = parseLocation(p.src, {
      cwd: p.cwd,
      host: p.host,
      cliForms: p.cliForms === true,
    });
    const dstLoc = parseLocation(p.dst, {
      cwd: p.cwd,
      host: p.host,
      cliForms: p.cliForms === true,
    });
    const id = `tr-${randomBytes(5).toString("hex")}`;
    const rec: TransferRecord = {
      id,
      item: p.item ?? null,
      src: formatLocation(srcLoc),
      dst: formatLocation(dstLoc),
      type: p.type ?? "auto",
      state: "queued",
      started_at: new Date().toISOString(),
      bytes: 0,
      total_bytes: 0,
      files: 0,
      total_files: 0,
      skipped: 0,
      rate_bps: 0,
      duration_ms: null,
      method: null,
      error: null,
    };
    this.remember(rec);
    const free = await this.slot();
    if (this.closed) {
      free();
      throw new SidecarError("SHUTTING_DOWN", "The sidecar shut down before this transfer started");
    }
    const opened: OpenedStore[] = [];
    let ok = false;
    const sig = signal ? AbortSignal.any([signal, this.abort.signal]) : this.abort.signal;
    try {
      rec.state = "running";
      const owner = p.owner ?? "staging";
      const open = (loc: typeof srcLoc): Promise<OpenedStore> =>
        withRetry(() => this.stores.open(loc, owner), { signal: sig });
      const src = await open(srcLoc);
      opened.push(src);
      const dst = await open(dstLoc);
      opened.push(dst);
      let type = p.type ?? "auto";
      if (type === "auto") {
        const st = await src.store.stat(src.path).catch(() => undefined);
        type = st?.type ?? "file";
        rec.type = type;
      }
      const res = await runTransfer({
        id,
        item: p.item,
        type,
        src: { store: src.store, path: src.path, loc: srcLoc },
        dst: { store: dst.store, path: dst.path, loc: dstLoc },
        signal: sig,
        onProgress: (s) => {
          Object.assign(rec, {
            bytes: s.bytes,
            total_bytes: s.total_bytes,
            files: s.files,
            total_files: s.total_files,
            skipped: s.skipped,
            rate_bps: s.rate_bps,
          });
          this.opts.events?.emit("transfer.progress", {
            ...s,
            item: rec.item,
            src: rec.src,
            dst: rec.dst,
          });
          onProgress?.(s);
        },
      });
      Object.assign(rec, {
        state: "done",
        duration_ms: res.duration_ms,
        method: res.method,
        skipped: res.skipped,
      });
      this.opts.events?.emit("transfer.done", {
        id,
        item: rec.item,
        src: rec.src,
        dst: rec.dst,
        ok: true,
        bytes: res.bytes,
        files: res.files,
        skipped: res.skipped,
        duration_ms: res.duration_ms,
        method: res.method,
      });
      this.opts.log?.info(
        {
          id,
          item: rec.item,
          src: rec.src,
          dst: rec.dst,
          bytes: res.bytes,
          files: res.files,
          skipped: res.skipped,
          duration_ms: res.duration_ms,
          method: res.method,
        },
        "transfer done",
      );
      ok = true;
      return { ...res, id, src: rec.src, dst: rec.dst };
    } catch (err) {
      const e = stagingFailure(err, { item: p.item, src: rec.src, dst: rec.dst });
      Object.assign(rec, { state: "failed", error: { code: e.code, message: e.message } });
      this.opts.events?.emit("transfer.done", {
        id,
        item: rec.item,
        src: rec.src,
        dst: rec.dst,
        ok: false,
        error: { code: e.code, message: e.message },
      });
      this.opts.log?.warn(
        { id, item: rec.item, src: rec.src, dst: rec.dst, code: e.code, error: e.message },
        "transfer failed",
      );
      throw e;
    } finally {
      const released = Promise.all(opened.map((o) => o.release().catch(() => undefined))).then(
        () => undefined,
      );
      if (ok) await released;
      else {
        // the caller hears of the failure now; leftovers wait for the connection to come back
        this.cleanups.add(released);
        void released.finally(() => this.cleanups.delete(released));
      }
      free();
    }
  }

  private remember(rec: TransferRecord): void {
    this.records.set(rec.id, rec);
    const keep = this.opts.keep ?? 200;
    if (this.records.size > keep) {
      for (const [id, r] of this.records) {
        if (this.records.size <= keep) break;
        if (r.state === "done" || r.state === "failed") this.records.delete(id);
      }
    }
  }

  /** Resolves once the background cleanups of failed transfers are done. */
  async idle(): Promise<void> {
    while (this.cleanups.size > 0) await Promise.all([...this.cleanups]);
  }

  list(): TransferRecord[] {
    return [...this.records.values()].map((r) => ({ ...r }));
  }

  status(): Record<string, unknown> {
    const all = [...this.records.values()];
    return {
      running: this.running,
      queued: this.waiting.length,
      done: all.filter((r) => r.state === "done").length,
      failed: all.filter((r) => r.state === "failed").length,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort(new SidecarError("SHUTTING_DOWN", "The sidecar is shutting down"));
    for (const w of this.waiting.splice(0)) w();
    await this.idle();
    await this.stores.close();
  }
}
