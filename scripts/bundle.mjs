// Bundles the CLI into dist/bin/ (parsl-sidecar.js and its lazily loaded chunks) with esbuild.
//
// Why: start-up. The CLI is ~250 ES modules (zod alone ~95 files); Node 20 resolves, reads and
// links each one, which made `parsl-sidecar run -- true` cost ~480 ms on an idle 2-vCPU machine.
// One bundle with code splitting keeps the lazy imports lazy (ssh2, the cloud SDKs, the env fast
// path) and loads the rest as a few files. Native and heavyweight packages stay external and load
// from node_modules as before. tsc still builds dist/ (the library entry and its types).
import { build } from "esbuild";
import { chmodSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = join(root, "dist", "bin");

// native addons (zeromq, ssh2's optional crypto, msgpackr-extract), packages that load files by
// path at run time (pino's transports), big ones only loaded on first use, and yaml (its CommonJS
// build, bundled, lost its named exports behind a dynamic import)
const external = ["zeromq", "ssh2", "cpu-features", "msgpackr", "pino", "execa", "yaml", "@aws-sdk/*", "@google-cloud/*", "playwright-core"];

// zod's namespace re-exports its ~50 message locales (about half of zod's code), which no tree
// shaking can drop behind `z.locales`; the sidecar's messages are English (zod's default, `en`).
const zodEnglishOnly = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](classic|core)$/.test(args.resolveDir) ? { path: join(args.resolveDir, "..", "locales", "en.js"), namespace: "zod-en" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "zod-en" }, (args) => ({ contents: `export { default as en } from ${JSON.stringify(args.path)};`, resolveDir: dirname(args.path) }));
  },
};

rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { "parsl-sidecar": join(root, "src", "cli", "entry.ts") },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  external,
  chunkNames: "chunks/[name]-[hash]",
  sourcemap: "linked",
  logLevel: "warning",
  plugins: [zodEnglishOnly],
  // bundled CommonJS packages (commander) call require() for Node's built-ins
  banner: { js: 'import { createRequire as __psc_createRequire } from "node:module"; const require = __psc_createRequire(import.meta.url);' },
});
chmodSync(join(outdir, "parsl-sidecar.js"), 0o755);
