/**
 * `npm run generate`: writes every generated file from its source. `--check` writes nothing and
 * exits 1 naming each file that differs (test/generated.test.ts does the same in the suite).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { protocolDocCodes, pythonCodes } from "./generate/error-codes.js";
import { remotePrograms } from "./generate/remote-programs.js";
import type { Generated } from "./generate/types.js";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Every generated file, from the sources as they are now. */
export function generateAll(root = ROOT): Generated[] {
  return [remotePrograms(root), pythonCodes(root), protocolDocCodes(root)];
}

function current(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const check = process.argv.includes("--check");
  let stale = 0;
  for (const g of generateAll()) {
    if (current(g.path) === g.text) continue;
    stale++;
    if (check) console.error(`stale: ${relative(ROOT, g.path)} (run \`npm run generate\`)`);
    else {
      writeFileSync(g.path, g.text);
      console.error(`wrote ${relative(ROOT, g.path)}`);
    }
  }
  process.exitCode = check && stale > 0 ? 1 : 0;
}
