/**
 * Google Cloud Storage with @google-cloud/storage: default credentials (refreshed by the auth
 * library), small files in one request checked by MD5, large ones uploaded resumably under a
 * temporary name and copied into place once verified.
 */
import { Storage, type File, type StorageOptions } from "@google-cloud/storage";
import { createHash } from "node:crypto";
import { SidecarError } from "../../errors.js";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { safeRelative } from "../safe-path.js";
import {
  type Digests,
  type PutOptions,
  type StagedWrite,
  type Store,
  type StoreEntry,
  tempName,
} from "../store.js";

export interface GcsStoreOptions {
  /** custom endpoint (with authentication); default $PARSL_SIDECAR_GCS_ENDPOINT. $STORAGE_EMULATOR_HOST names an emulator (no authentication). */
  endpoint?: string | undefined;
  projectId?: string | undefined;
  /** files up to this size are sent in one verified request @default 8 MiB */
  singleRequestMax?: number;
}

const b64ToHex = (s: string | undefined): string | undefined =>
  s ? Buffer.from(s, "base64").toString("hex") : undefined;

function digestsOf(meta: {
  md5Hash?: string | undefined;
  crc32c?: string | undefined;
  metadata?: Record<string, unknown> | undefined;
}): Digests {
  const d: Digests = {};
  const md5 = b64ToHex(meta.md5Hash);
  if (md5) d.md5 = md5;
  if (meta.crc32c) d.crc32c = meta.crc32c;
  const sha = meta.metadata?.sha256;
  if (typeof sha === "string" && /^[0-9a-f]{64}$/i.test(sha)) d.sha256 = sha.toLowerCase();
  return d;
}

async function collect(
  data: AsyncIterable<Buffer>,
  max: number,
): Promise<{ head: Buffer[]; size: number; rest: AsyncIterator<Buffer> | undefined }> {
  const it = data[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let size = 0;
  for (;;) {
    const n = await it.next();
    if (n.done) return { head, size, rest: undefined };
    head.push(n.value);
    size += n.value.length;
    if (size > max) return { head, size, rest: it };
  }
}

/**
 * The library uses $STORAGE_EMULATOR_HOST verbatim as its base URL (without /storage/v1), unlike
 * gcloud and the Python client; the endpoint is passed explicitly instead.
 */
function withoutEmulatorEnv<T>(fn: () => T): T {
  const saved = process.env.STORAGE_EMULATOR_HOST;
  delete process.env.STORAGE_EMULATOR_HOST;
  try {
    return fn();
  } finally {
    if (saved !== undefined) process.env.STORAGE_EMULATOR_HOST = saved;
  }
}

export class GcsStore implements Store {
  readonly kind = "gcs" as const;
  readonly storage: Storage;
  private readonly authenticated: boolean;
  private authOk = false;

  constructor(
    readonly bucket: string,
    private readonly opts: GcsStoreOptions = {},
  ) {
    const endpoint = opts.endpoint ?? process.env.PARSL_SIDECAR_GCS_ENDPOINT;
    const emulator = process.env.STORAGE_EMULATOR_HOST;
    const o: StorageOptions = { retryOptions: { autoRetry: true, maxRetries: 3 } };
    if (endpoint)
      Object.assign(o, {
        apiEndpoint: endpoint.replace(/\/storage\/v1\/?$/, ""),
        useAuthWithCustomEndpoint: true,
      });
    else if (emulator)
      Object.assign(o, {
        apiEndpoint: (/^https?:\/\//.test(emulator) ? emulator : `http://${emulator}`).replace(
          /\/storage\/v1\/?$/,
          "",
        ),
        useAuthWithCustomEndpoint: false,
      });
    if (opts.projectId ?? process.env.GOOGLE_CLOUD_PROJECT)
      o.projectId = opts.projectId ?? process.env.GOOGLE_CLOUD_PROJECT;
    this.storage = withoutEmulatorEnv(() => new Storage(o));
    this.authenticated = Boolean(endpoint) || !emulator;
  }

  /** Find credentials once up front so that their absence reads as such (not as a missing file). */
  private async ready(): Promise<void> {
    if (!this.authenticated || this.authOk) return;
    try {
      await this.storage.authClient.getClient();
      this.authOk = true;
    } catch (err) {
      throw new SidecarError(
        "STAGING_CREDENTIALS",
        `No usable Google Cloud credentials for gs://${this.bucket}: ${(err as Error).message.split("\n")[0]}`,
        { cause: err },
      );
    }
  }

  url(key: string): string {
    return `gs://${this.bucket}/${key}`;
  }

  private file(key: string): File {
    return this.storage.bucket(this.bucket).file(key);
  }

  private prefixOf(key: string): string {
    return key === "" || key.endsWith("/") ? key : `${key}/`;
  }

  async stat(key: string): Promise<StoreEntry | undefined> {
    await this.ready();
    if (key !== "" && !key.endsWith("/")) {
      try {
        const [m] = await this.file(key).getMetadata();
        const entry: StoreEntry = {
          path: "",
          type: "file",
          size: Number(m.size ?? 0),
          digests: digestsOf(m as never),
        };
        if (m.updated) entry.mtimeMs = Date.parse(String(m.updated));
        return entry;
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
    }
    const [files] = await this.storage
      .bucket(this.bucket)
      .getFiles({ prefix: this.prefixOf(key), maxResults: 1, autoPaginate: false });
    return files.length > 0 || key === ""
      ? { path: "", type: "directory", size: 0, digests: {} }
      : undefined;
  }

  async list(root: string): Promise<StoreEntry[]> {
    await this.ready();
    const prefix = this.prefixOf(root);
    const [files] = await this.storage.bucket(this.bucket).getFiles({ prefix, autoPaginate: true });
    const out: StoreEntry[] = [];
    for (const f of files) {
      const rel = f.name.slice(prefix.length);
      if (rel === "") continue;
      if (rel.endsWith("/")) {
        out.push({
          path: safeRelative(rel, this.url(root)),
          type: "directory",
          size: 0,
          digests: {},
        });
        continue;
      }
      const entry: StoreEntry = {
        path: safeRelative(rel, this.url(root)),
        type: "file",
        size: Number(f.metadata.size ?? 0),
        digests: digestsOf(f.metadata as never),
      };
      if (f.metadata.updated) entry.mtimeMs = Date.parse(String(f.metadata.updated));
      out.push(entry);
    }
    return out;
  }

  async read(key: string): Promise<Readable> {
    await this.ready();
    const f = this.file(key);
    // surface a missing object or bucket here rather than in the middle of the stream
    await f.getMetadata();
    return f.createReadStream({ validation: false });
  }

  async put(key: string, data: Readable, opts: PutOptions = {}): Promise<StagedWrite> {
    await this.ready();
    const max = this.opts.singleRequestMax ?? 8 * 1024 * 1024;
    const { head, size, rest } = await collect(data, max);
    const meta = (d: Digests): Record<string, string> => (d.sha256 ? { sha256: d.sha256 } : {});
    if (!rest) {
      const body = Buffer.concat(head, size);
      const md5 = createHash("md5").update(body).digest();
      return {
        size,
        digests: { md5: md5.toString("hex") },
        commit: async (d) => {
          await this.file(key).save(body, {
            resumable: false,
            validation: "md5",
            metadata: {
              md5Hash: md5.toString("base64"),
              metadata: meta({ ...opts.digests, ...d }),
            },
          });
        },
        abort: async () => undefined,
      };
    }
    const slash = key.lastIndexOf("/");
    const tmpKey = `${key.slice(0, slash + 1)}${tempName(key.slice(slash + 1))}`;
    const tmp = this.file(tmpKey);
    const remove = async (): Promise<void> => {
      await tmp.delete({ ignoreNotFound: true }).catch(() => undefined);
    };
    try {
      const all = (async function* () {
        yield* head;
        for (;;) {
          const n = await rest.next();
          if (n.done) return;
          yield n.value;
        }
      })();
      await pipeline(
        all,
        tmp.createWriteStream({ resumable: true, validation: "crc32c" }),
        opts.signal ? { signal: opts.signal } : {},
      );
      const [m] = await tmp.getMetadata();
      return {
        size: Number(m.size ?? 0),
        digests: digestsOf(m as never),
        commit: async (d) => {
          await tmp.copy(this.file(key), { metadata: meta({ ...opts.digests, ...d }) } as never);
          await remove();
        },
        abort: remove,
      };
    } catch (err) {
      await remove();
      throw err;
    }
  }

  async mkdir(): Promise<void> {
    // object stores have no directories
  }

  async remove(key: string): Promise<void> {
    if (key !== "" && !key.endsWith("/")) await this.file(key).delete({ ignoreNotFound: true });
    await this.storage.bucket(this.bucket).deleteFiles({ prefix: this.prefixOf(key), force: true });
  }

  async close(): Promise<void> {
    // the client holds no sockets beyond the agent's keep-alive
  }
}
