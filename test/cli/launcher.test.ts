// The bin entry runs the CommonJS bundle with V8's code cache (src/cli/launcher.ts): the cache
// built by scripts/bundle.mjs is one V8 accepts, and a cache it rejects (another Node, a corrupt
// file) neither breaks the CLI nor stays: it is rewritten at exit.
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { Script } from "node:vm";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";

const bin = resolve(import.meta.dirname, "../../dist/bin");
// a copy beside dist/bin, so that the package root (package.json above) is found as from dist/bin
const copy = mkdtempSync(join(resolve(bin, ".."), "launcher-test-"));
afterAll(() => rmSync(copy, { recursive: true, force: true }));

/** Whether V8 takes `cache` for the bundle in `dir`, wrapped as the launcher wraps it. */
function accepted(dir: string, cache: Buffer): boolean {
  const file = join(dir, "cli.cjs");
  const source = `(function (exports, require, module, __filename, __dirname) { ${readFileSync(file, "utf8")}\n})`;
  return new Script(source, { filename: file, cachedData: cache }).cachedDataRejected === false;
}

describe("the bin entry and its code cache", () => {
  it("the built cache is accepted by this Node", () => {
    expect(
      existsSync(join(bin, "cli.cjs.cache")),
      "dist/bin/cli.cjs.cache: run `bash scripts/setup.sh`",
    ).toBe(true);
    expect(accepted(bin, readFileSync(join(bin, "cli.cjs.cache")))).toBe(true);
  });

  it("a corrupt cache: the CLI still runs, and the cache is rewritten to one that is accepted", async () => {
    for (const f of ["parsl-sidecar.js", "cli.cjs"]) copyFileSync(join(bin, f), join(copy, f));
    const garbage = Buffer.alloc(4096, 7);
    writeFileSync(join(copy, "cli.cjs.cache"), garbage);
    const env = {
      PARSL_SIDECAR_RUNTIME_DIR: join(copy, "rt"),
      PARSL_SIDECAR_STATE_DIR: join(copy, "state"),
      PARSL_SIDECAR_CONNECTION_FILE: "",
      PARSL_SIDECAR_JOB: "",
    };
    const r = await execa(
      process.execPath,
      [join(copy, "parsl-sidecar.js"), "run", "-q", "--", "sh", "-c", "exit 3"],
      { reject: false, env },
    );
    expect(r.exitCode, r.stderr).toBe(3);
    const rewritten = readFileSync(join(copy, "cli.cjs.cache"));
    expect(rewritten.equals(garbage)).toBe(false);
    expect(accepted(copy, rewritten)).toBe(true);
  });
});
