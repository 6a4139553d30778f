/** Opens the store for a location: one local store, one client per bucket, a pool lease per use. */
import { SidecarError } from "../../errors.js";
import type { Hosts } from "../../ssh/host.js";
import type { Location } from "../location.js";
import type { Store } from "../store.js";
import type { GcsStore, GcsStoreOptions } from "./gcs.js";
import { LocalStore } from "./local.js";
import { PoolStore } from "./pool.js";
import type { S3Store, S3StoreOptions } from "./s3.js";

export interface OpenedStore {
  store: Store;
  /** the path or key inside the store */
  path: string;
  /** give back what this use holds (a pool lease, after cleaning temporary files a drop left) */
  release(): Promise<void>;
}

export interface StoreFactoryOptions {
  /** where pool locations are reached; without it only local and cloud locations work */
  hosts?: Hosts | undefined;
  s3?: S3StoreOptions;
  gcs?: GcsStoreOptions;
}

export class StoreFactory {
  private readonly local = new LocalStore();
  private readonly s3 = new Map<string, S3Store>();
  private readonly gcs = new Map<string, GcsStore>();

  constructor(private readonly opts: StoreFactoryOptions = {}) {}

  async open(loc: Location, owner: string): Promise<OpenedStore> {
    switch (loc.kind) {
      case "local":
        return { store: this.local, path: loc.path, release: async () => undefined };
      case "s3": {
        let s = this.s3.get(loc.bucket);
        // the cloud SDKs load on first use: they cost hundreds of ms of start-up (`run -- true`)
        if (!s) {
          const { S3Store } = await import("./s3.js");
          s = this.s3.get(loc.bucket) ?? new S3Store(loc.bucket, this.opts.s3);
          this.s3.set(loc.bucket, s);
        }
        return { store: s, path: loc.key, release: async () => undefined };
      }
      case "gcs": {
        let s = this.gcs.get(loc.bucket);
        if (!s) {
          const { GcsStore } = await import("./gcs.js");
          s = this.gcs.get(loc.bucket) ?? new GcsStore(loc.bucket, this.opts.gcs);
          this.gcs.set(loc.bucket, s);
        }
        return { store: s, path: loc.key, release: async () => undefined };
      }
      case "pool": {
        if (!this.opts.hosts)
          throw new SidecarError(
            "STAGING_INVALID",
            `Cannot reach ${loc.target}: this sidecar cannot open SSH connections`,
          );
        const lease = await this.opts.hosts.acquire(loc.target, owner);
        const store = new PoolStore(lease);
        return { store, path: loc.path, release: () => store.close() };
      }
    }
  }

  async close(): Promise<void> {
    for (const s of [...this.s3.values(), ...this.gcs.values()])
      await s.close().catch(() => undefined);
    this.s3.clear();
    this.gcs.clear();
  }
}
