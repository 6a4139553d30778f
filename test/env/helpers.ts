// Shared pieces of the env tests: temp dirs, the conda stand-in laid out as a CONDA_DIR, a
// stand-in Miniforge installer, and a wheelhouse with Parsl for offline uv installs.
import { execFileSync } from "node:child_process";
import { chmodSync as chmod } from "node:fs";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isSidecarError, type SidecarError } from "../../src/errors.js";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const FIXTURES = join(REPO, "test/fixtures");
export const VENV_PY = join(REPO, ".venv/bin/python");
export const UV = join(REPO, ".venv/bin/uv");

const made: string[] = [];

/** A fresh temp dir, removed by cleanupTmp(). */
export function tmp(prefix = "psc-env-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

export function cleanupTmp(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Lay out a CONDA_DIR whose bin/<tool> is the stand-in; its envs' python runs `python`. */
export function fakeCondaDir(
  dir: string,
  opts: { tool?: "conda" | "mamba" | "micromamba"; python?: string } = {},
): string {
  mkdirSync(join(dir, "bin"), { recursive: true });
  mkdirSync(join(dir, "envs"), { recursive: true });
  const tool = join(dir, "bin", opts.tool ?? "conda");
  copyFileSync(join(FIXTURES, "conda"), tool);
  chmodSync(tool, 0o755);
  writeFileSync(join(dir, "standin-python"), `${opts.python ?? VENV_PY}\n`);
  return tool;
}

export interface StandinCall {
  tool: string;
  argv: string[];
  file_content?: string;
}

/** The calls the stand-in logged in CONDA_DIR. */
export function standinCalls(condaDir: string): StandinCall[] {
  const f = join(condaDir, "standin-calls.jsonl");
  if (!existsSync(f)) return [];
  return readFileSync(f, "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as StandinCall);
}

/**
 * A stand-in Miniforge installer: a bash script carrying the conda stand-in as its payload,
 * honouring `-b -p DIR [-u]` like the real one (refuses an existing DIR without -u).
 */
export function makeInstaller(path: string, opts: { fail?: boolean } = {}): string {
  const payload = readFileSync(join(FIXTURES, "conda"), "utf8");
  const script = `#!/bin/bash
# stand-in Miniforge3 installer
set -e
BATCH=0; PREFIX="$HOME/miniforge3"; UPDATE=0
while getopts "bp:uh" x; do
  case "$x" in
    b) BATCH=1 ;;
    p) PREFIX="$OPTARG" ;;
    u) UPDATE=1 ;;
    h) echo "usage: $0 [-b] [-p PREFIX] [-u]"; exit 2 ;;
    *) exit 2 ;;
  esac
done
[ "$BATCH" = 1 ] || { echo "ERROR: the stand-in only runs in batch mode (-b)" >&2; exit 2; }
if [ -e "$PREFIX" ] && [ "$UPDATE" = 0 ]; then
  echo "ERROR: File or directory already exists: '$PREFIX'" >&2
  echo "If you want to update an existing installation, use the -u option." >&2
  exit 1
fi
echo "PREFIX=$PREFIX"
echo "Unpacking payload ..."
mkdir -p "$PREFIX/bin" "$PREFIX/condabin" "$PREFIX/envs" "$PREFIX/conda-meta"
${opts.fail ? 'echo "ERROR: the payload is truncated (stand-in failure)" >&2; exit 1' : ""}
cat > "$PREFIX/bin/conda" <<'STANDIN_PAYLOAD_END'
${payload}STANDIN_PAYLOAD_END
chmod +x "$PREFIX/bin/conda"
printf '%s\\n' ${JSON.stringify(VENV_PY)} > "$PREFIX/standin-python"
echo "installation finished."
`;
  writeFileSync(path, script, { mode: 0o755 });
  return path;
}

/**
 * Parsl (.venv's release, or `version`) and its dependencies as wheels, downloaded once per
 * machine (PyPI through pip's cache).
 */
export function wheelhouse(version = venvParsl()): string {
  const dir = join(tmpdir(), "parsl-sidecar-wheels", version);
  if (existsSync(join(dir, ".complete"))) return dir;
  const part = `${dir}.part-${process.pid}`;
  rmSync(part, { recursive: true, force: true });
  mkdirSync(part, { recursive: true });
  execFileSync(
    VENV_PY,
    ["-m", "pip", "download", "--quiet", "-d", part, `parsl==${version}`, "uv"],
    { stdio: ["ignore", "ignore", "inherit"], timeout: 300_000 },
  );
  writeFileSync(join(part, ".complete"), "");
  try {
    renameSync(part, dir);
  } catch {
    // another test file won the race; its copy is as good
    rmSync(part, { recursive: true, force: true });
  }
  return dir;
}

/** The Parsl release installed in .venv. */
export function venvParsl(): string {
  return execFileSync(
    VENV_PY,
    ["-c", "import importlib.metadata as m; print(m.version('parsl'))"],
    { encoding: "utf8" },
  ).trim();
}

/** A directory of symlinks to everything in /usr/bin and /bin except python*: a PATH without Python. */
export function pathWithoutPython(dir: string): string {
  const bin = join(dir, "nopython-bin");
  mkdirSync(bin, { recursive: true });
  execFileSync("sh", [
    "-c",
    `for f in /usr/bin/* /bin/*; do n=$(basename "$f"); case "$n" in python*|pydoc*|pip*|uv|uvx) continue;; esac; [ -e "${bin}/$n" ] || ln -s "$f" "${bin}/$n"; done`,
  ]);
  return bin;
}

/**
 * Make `dir` unwritable even for root: a read-only tmpfs mounted on it (as root), else mode 0555.
 * Returns the undo, or undefined when neither works (the caller skips loudly).
 */
export function makeReadOnly(dir: string): (() => void) | undefined {
  mkdirSync(dir, { recursive: true });
  if (process.getuid?.() === 0) {
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", dir], { stdio: "ignore" });
      return () => execFileSync("umount", [dir]);
    } catch {
      return undefined;
    }
  }
  chmod(dir, 0o555);
  return () => chmod(dir, 0o755);
}

/** The SidecarError `p` rejects with (anything else, or no rejection, fails the test). */
export async function rejection(p: Promise<unknown>): Promise<SidecarError> {
  try {
    await p;
  } catch (err) {
    if (isSidecarError(err)) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}
