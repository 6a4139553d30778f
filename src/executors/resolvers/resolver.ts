/** The resolver named by an executor's RESOLVER key. */
import { SidecarError } from "../../errors.js";
import { ParallelWorksResolver } from "./parallel-works.js";
import type { PoolResolver } from "./types.js";

export type { PoolResolver, ResolvedPool, ResolveOptions } from "./types.js";

export function resolverFor(name: string, env: NodeJS.ProcessEnv = process.env): PoolResolver {
  if (name === "parallelworks") return ParallelWorksResolver.fromEnv(env);
  throw new SidecarError("INVALID_ARGUMENT", `Unknown RESOLVER \`${name}\`; known: parallelworks`);
}
