// npm run wheel: the Python distribution with the sidecar in it, built into dist/python/.
//
// The wheel is pure Python + pure JavaScript (py3-none-any): the CLI bundle (scripts/bundle.mjs)
// has no native addon in it (the RPC client speaks ZMTP itself, src/rpc/zmtp/dealer.ts), and the
// packages it loads only on first use (ssh2, the S3 and GCS SDKs) travel as one-file bundles in
// a node_modules/ beside it, without their optional native parts (ssh2 falls back to its
// JavaScript crypto, cpu-features is optional). So `pip install` needs no compiler and no npm.
//
// Layout inside the wheel (parsl_sidecar_cli/sidecar/, staged in a copy of python/):
//   package.json            name, version (read by src/version.ts), "type": "module"
//   dist/bin/               parsl-sidecar.js, cli.cjs, cli.cjs.cache (as npm installs them)
//   src/web/assets/         the local page (src/web/assets.ts reads it by path)
//   node_modules/NAME/      ssh2, @aws-sdk/client-s3, @google-cloud/storage, one file each
// The programs sent to pools are in cli.cjs already (src/remote/programs.generated.ts).
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const out = join(root, "dist", "python");
const say = (msg) => process.stderr.write(`[wheel] ${msg}\n`);

const bin = join(root, "dist", "bin");
if (!existsSync(join(bin, "cli.cjs")))
  throw new Error(`${bin}/cli.cjs is missing: run \`npm run wheel\` (it builds it first)`);

// the wheel is built from a copy of python/, so that the checkout gets no build/ or staged files
const work = mkdtempSync(join(tmpdir(), "psc-wheel-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
const project = join(work, "python");
for (const f of ["pyproject.toml", "setup.py", "parsl_sidecar", "parsl_sidecar_cli"])
  cpSync(join(root, "python", f), join(project, f), {
    recursive: true,
    filter: (p) => !p.includes("__pycache__"),
  });
const stage = join(project, "parsl_sidecar_cli", "sidecar");
mkdirSync(join(stage, "dist", "bin"), { recursive: true });
writeFileSync(
  join(stage, "package.json"),
  `${JSON.stringify({ name: pkg.name, version: pkg.version, type: "module", private: true }, null, 2)}\n`,
);
for (const f of ["parsl-sidecar.js", "cli.cjs", "cli.cjs.cache"])
  cpSync(join(bin, f), join(stage, "dist", "bin", f));
cpSync(join(root, "src", "web", "assets"), join(stage, "src", "web", "assets"), {
  recursive: true,
});

// the bundle's external packages, each bundled into one CommonJS file under node_modules/
const vendored = ["ssh2", "@aws-sdk/client-s3", "@google-cloud/storage"];
for (const name of vendored) {
  say(`bundling ${name} into node_modules/${name}`);
  const dir = join(stage, "node_modules", name);
  await build({
    stdin: { contents: `module.exports = require(${JSON.stringify(name)});`, resolveDir: root },
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    minify: true,
    legalComments: "inline",
    logLevel: "error",
    // optional native parts, loaded in try/catch: without them the packages use JavaScript
    external: ["cpu-features", "*.node"],
    outfile: join(dir, "index.js"),
  });
  // a package.json without "type": "module", so index.js is CommonJS whatever is above it
  const version = JSON.parse(
    readFileSync(join(root, "node_modules", name, "package.json"), "utf8"),
  ).version;
  writeFileSync(
    join(dir, "package.json"),
    `${JSON.stringify({ name, version, main: "index.js" })}\n`,
  );
  const licence = readdirSync(join(root, "node_modules", name)).find((f) => /^licen[cs]e/i.test(f));
  if (licence) cpSync(join(root, "node_modules", name, licence), join(dir, licence));
}

say("building the wheel (pip wheel python/)");
rmSync(out, { recursive: true, force: true });
const venvPython = join(root, ".venv", "bin", "python");
const python = existsSync(venvPython) ? venvPython : "python3";
// setuptools' notes about the data directories are noise: shown only when the build fails
const built = spawnSync(
  python,
  ["-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out, project],
  { cwd: work, encoding: "utf8" },
);
if (built.status !== 0) {
  process.stderr.write(built.stdout + built.stderr);
  throw new Error(`pip wheel failed (exit ${built.status ?? built.signal})`);
}
for (const f of readdirSync(out))
  say(
    `${join("dist", "python", f)}: ${(statSync(join(out, f)).size / 1024 / 1024).toFixed(1)} MiB`,
  );
