#!/usr/bin/env -S node --max-semi-space-size=8
// V8's young generation capped at 2 x 8 MB (default 2 x 16): under ssh2's allocation rate the
// default grew a long run's RSS by ~35 MB (docs/benchmarks.md, soak). Read by src/cli/node-flags.ts.
/**
 * The bin entry (dist/bin/parsl-sidecar.js): runs the CommonJS bundle of the CLI (cli.cjs, built
 * by scripts/bundle.mjs) with V8's code cache (cli.cjs.cache) so that Node does not parse and
 * compile ~1.5 MB of JavaScript on every start. Node 20 has no compile cache of its own (22.1
 * added module.enableCompileCache) and none for ES modules, hence CommonJS and vm.Script.
 *
 * The cache is written at build time after a training run (PARSL_SIDECAR_WRITE_CODE_CACHE=1:
 * the functions that run compiled are in it too). When V8 rejects it (another Node or V8 build),
 * the CLI runs as it would without it, and rewrites it at exit if this directory is writable.
 */
import { accessSync, constants, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Script } from "node:vm";
import { writeFileAtomic } from "../util/atomic-write.js";

const dir = dirname(fileURLToPath(import.meta.url));
const file = join(dir, "cli.cjs");
const cacheFile = `${file}.cache`;

function readCache(): Buffer | undefined {
  try {
    return readFileSync(cacheFile);
  } catch {
    return undefined;
  }
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function writeCache(script: Script): void {
  try {
    writeFileAtomic(cacheFile, script.createCachedData(), { mode: 0o644 });
  } catch {
    // a read-only install runs without the cache
  }
}

const cachedData = readCache();
// the CommonJS wrapper, as Node's loader applies it (line 1 of the bundle stays line 1)
const source = `(function (exports, require, module, __filename, __dirname) { ${readFileSync(file, "utf8")}\n})`;
const script = new Script(source, { filename: file, ...(cachedData ? { cachedData } : {}) });
if (
  process.env.PARSL_SIDECAR_WRITE_CODE_CACHE === "1" ||
  ((cachedData === undefined || script.cachedDataRejected === true) && writable(dir))
) {
  process.once("exit", () => writeCache(script));
}
const module = { exports: {} };
(script.runInThisContext() as (...args: unknown[]) => void).call(
  module.exports,
  module.exports,
  createRequire(file),
  module,
  file,
  dir,
);
