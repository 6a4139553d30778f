// Bundles the CLI into dist/bin/ with esbuild: cli.cjs (the whole CLI, CommonJS), the bin entry
// parsl-sidecar.js (src/cli/launcher.ts) that runs it with V8's code cache, and cli.cjs.cache,
// written by one training run of `run -- true`.
//
// Why: start-up. The CLI is ~250 ES modules (zod alone ~95 files); Node 20 resolved, read and
// linked each one, then parsed and compiled ~1.5 MB of JavaScript on every start: that made
// `parsl-sidecar run -- true` cost ~480 ms on an idle 2-vCPU machine. One file removes the module
// graph; CommonJS lets the launcher hand V8 a code cache (Node 20 has none for ES modules), which
// removes most of the parsing and compiling. Lazy imports stay lazy: their code is in the file
// but runs on first use. Native addons and big packages loaded only on first use stay external
// and load from node_modules. tsc still builds dist/ (the library entry and its types).
import { build } from "esbuild";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = join(root, "dist", "bin");

// no native addon is loaded (the RPC client speaks ZMTP itself): ssh2 (and its optional
// cpu-features), msgpackr's optional extractor and the cloud SDKs are loaded only on first use,
// from node_modules (npm) or from one-file bundles beside the CLI (the wheel: scripts/wheel.mjs)
const external = [
  "ssh2",
  "cpu-features",
  "msgpackr-extract",
  "@aws-sdk/*",
  "@google-cloud/*",
  "playwright-core",
];

// zod's namespace re-exports its ~50 message locales (about half of zod's code), which no tree
// shaking can drop behind `z.locales`; the sidecar's messages are English (zod's default, `en`).
const zodEnglishOnly = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](classic|core)$/.test(args.resolveDir)
        ? { path: join(args.resolveDir, "..", "locales", "en.js"), namespace: "zod-en" }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "zod-en" }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(args.path)};`,
      resolveDir: dirname(args.path),
    }));
  },
};

const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  sourcemap: "linked",
  logLevel: "warning",
};
rmSync(outdir, { recursive: true, force: true });
await build({
  ...common,
  entryPoints: [join(root, "src", "cli", "entry.ts")],
  outfile: join(outdir, "cli.cjs"),
  format: "cjs",
  external,
  plugins: [zodEnglishOnly],
  // the sources are ES modules: import.meta.url becomes the bundle's own URL
  define: { "import.meta.url": "__psc_import_meta_url", "import.meta.dirname": "__dirname" },
  banner: {
    js: 'const __psc_import_meta_url = require("node:url").pathToFileURL(__filename).href;',
  },
  // import() of an external package becomes require(): no dynamic import inside vm.Script
  supported: { "dynamic-import": false },
});
await build({
  ...common,
  entryPoints: [join(root, "src", "cli", "launcher.ts")],
  outfile: join(outdir, "parsl-sidecar.js"),
  format: "esm",
});
chmodSync(join(outdir, "parsl-sidecar.js"), 0o755);

// the training run: its exit writes cli.cjs.cache with every function it compiled
const tmp = mkdtempSync(join(tmpdir(), "psc-bundle-"));
try {
  const env = {
    ...process.env,
    PARSL_SIDECAR_WRITE_CODE_CACHE: "1",
    PARSL_SIDECAR_STATE_DIR: join(tmp, "state"),
    PARSL_SIDECAR_RUNTIME_DIR: join(tmp, "rt"),
  };
  delete env.PARSL_SIDECAR_CONNECTION_FILE;
  delete env.PARSL_SIDECAR_JOB;
  const r = spawnSync(
    process.execPath,
    [join(outdir, "parsl-sidecar.js"), "run", "-q", "--", "true"],
    { env, stdio: "inherit" },
  );
  if (r.status !== 0)
    throw new Error(`the training run of the bundled CLI failed (exit ${r.status ?? r.signal})`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
