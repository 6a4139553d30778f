/**
 * The conda installer on this machine: a local file, or a download from a URL (Miniforge's
 * latest for the host by default) cached by checksum. Its SHA-256 must match the expected one
 * (given, or the `<url>.sha256` published beside it); a mismatch is refused, never run.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { SidecarError } from "../errors.js";
import type { InstallerSpec } from "./spec.js";
import type { ProgressFn } from "./step.js";

export interface LocalInstaller {
  path: string;
  sha256: string;
  source: string;
}

/** Miniforge's installer URL for a host's `uname -sm` (e.g. "Linux x86_64"). */
export function defaultInstallerUrl(uname: string): string {
  const [sys = "Linux", machine = "x86_64"] = uname.trim().split(/\s+/);
  const os = sys === "Darwin" ? "MacOSX" : "Linux";
  const arch =
    machine === "amd64" ? "x86_64" : machine === "aarch64" && os === "MacOSX" ? "arm64" : machine;
  return `https://github.com/conda-forge/miniforge/releases/latest/download/Miniforge3-${os}-${arch}.sh`;
}

/** SHA-256 of a local file, hex. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  await pipeline(createReadStream(path), h);
  return h.digest("hex");
}

function mismatch(source: string, expected: string, got: string): SidecarError {
  return new SidecarError(
    "ENV_FAILED",
    `The conda installer ${source} does not match its checksum (expected sha256 ${expected}, got ${got}); refusing to run it. Download it again from a trusted source, or fix CONDA_INSTALLER_SHA256`,
    { data: { source, expected, got } },
  );
}

async function fetchOk(url: string, what: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: "follow" });
  } catch (err) {
    throw new SidecarError(
      "ENV_FAILED",
      `Cannot download ${what} from ${url}: ${(err as Error).message}${(err as { cause?: Error }).cause ? ` (${(err as { cause?: Error }).cause!.message})` : ""}`,
      { cause: err, data: { url } },
    );
  }
  if (!res.ok || !res.body)
    throw new SidecarError(
      "ENV_FAILED",
      `Cannot download ${what} from ${url}: HTTP ${res.status} ${res.statusText}`,
      { data: { url, status: res.status } },
    );
  return res;
}

/** Get the installer onto this machine and verify it. */
export async function localInstaller(
  spec: InstallerSpec,
  uname: string,
  opts: { cacheDir?: string; onProgress?: ProgressFn } = {},
): Promise<LocalInstaller> {
  if (spec.file) {
    if (!existsSync(spec.file))
      throw new SidecarError("ENV_NOT_FOUND", `The conda installer ${spec.file} does not exist`, {
        data: { file: spec.file },
      });
    const got = await sha256File(spec.file);
    if (spec.sha256 && got !== spec.sha256.toLowerCase())
      throw mismatch(spec.file, spec.sha256.toLowerCase(), got);
    return { path: spec.file, sha256: got, source: spec.file };
  }
  const url = spec.url ?? defaultInstallerUrl(uname);
  if (!/^https?:\/\//.test(url))
    throw new SidecarError(
      "ENV_INVALID",
      `Expected the installer URL to start with https:// (or http://), got \`${url}\``,
      { data: { url } },
    );
  let expected = spec.sha256?.toLowerCase();
  if (!expected) {
    const res = await fetchOk(`${url}.sha256`, "the installer's checksum");
    const m = /^([0-9a-fA-F]{64})\b/.exec((await res.text()).trim());
    if (!m)
      throw new SidecarError(
        "ENV_FAILED",
        `${url}.sha256 does not start with a SHA-256; give CONDA_INSTALLER_SHA256 instead`,
        { data: { url } },
      );
    expected = m[1]!.toLowerCase();
  }
  const dir = opts.cacheDir ?? join(homedir(), ".cache", "parsl-sidecar", "installers");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const cached = join(dir, `${expected}.sh`);
  if (existsSync(cached) && (await sha256File(cached)) === expected)
    return { path: cached, sha256: expected, source: url };
  opts.onProgress?.({ phase: "download", message: `downloading ${url}` });
  const res = await fetchOk(url, "the conda installer");
  const total = Number(res.headers.get("content-length") ?? 0);
  const tmp = `${cached}.part-${process.pid}`;
  const h = createHash("sha256");
  let got = 0;
  let lastReport = 0;
  const body = Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>);
  body.on("data", (b: Buffer) => {
    h.update(b);
    got += b.length;
    if (total > 0 && opts.onProgress && Date.now() - lastReport > 500) {
      lastReport = Date.now();
      opts.onProgress({
        phase: "download",
        message: `downloaded ${(got / 1048576).toFixed(1)} of ${(total / 1048576).toFixed(1)} MiB`,
        fraction: got / total,
      });
    }
  });
  try {
    await pipeline(body, createWriteStream(tmp, { mode: 0o600 }));
    const digest = h.digest("hex");
    if (digest !== expected) throw mismatch(url, expected, digest);
    await rename(tmp, cached);
  } finally {
    await rm(tmp, { force: true });
  }
  return { path: cached, sha256: expected, source: url };
}
