// Shared by the web tests: a real sidecar in a private runtime dir, executors files, a browser.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { SidecarClient } from "../../src/client/client.js";
import { Daemon } from "../../src/daemon/daemon.js";

export const CHROMIUM = "/usr/bin/chromium";
export const ARTIFACTS = join(import.meta.dirname, "..", "..", "test-artifacts", "web");

/**
 * Two pools as in the original README, with a key the schema does not know. `runDir` is where
 * a preflight may create directories; `cpuPython` sets the first pool's PYTHON.
 */
export function twoPools(runDir = "/home/me/tmp", cpuPython?: string): string {
  return `{
    "cpu_executor": {
        "POOL": "koehr_cpu",
        "CONDA_ENV": "parsl_py39",
        "CONDA_DIR": "/contrib/me/miniconda3",
        "RUN_DIR": "${runDir}",${cpuPython ? `\n        "PYTHON": "${cpuPython}",` : ""}
        "CORES_PER_WORKER": 4,
        "CREATE_SINGULARITY_CONTAINER": "true",
        "MY_TEAM_NOTE": "ask Alvaro before changing"
    },
    "gpu_executor": {
        "POOL": "google_gpu",
        "RUN_DIR": "${runDir}",
        "CORES_PER_WORKER": 8
    }
}
`;
}

export const TWO_POOLS = twoPools();

export interface Sidecar {
  daemon: Daemon;
  client: SidecarClient;
  dir: string;
  /** write a file in the test's directory, returning its path */
  write(name: string, text: string): string;
  close(): Promise<void>;
}

export async function startSidecar(): Promise<Sidecar> {
  const dir = mkdtempSync(join(tmpdir(), "psc-web-"));
  const daemon = await Daemon.start({
    runtimeDir: join(dir, "rt"),
    stateDir: join(dir, "state"),
    stderrLevel: "silent",
  });
  const client = SidecarClient.connect(daemon.connectionFile);
  return {
    daemon,
    client,
    dir,
    write(name, text) {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    },
    async close() {
      client.close();
      await daemon.close("test done");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function openReview(
  s: Sidecar,
  file: string,
): Promise<{ id: string; url: string; origin: string }> {
  const r = await s.client.call<{ id: string; url: string }>("web.review", { file });
  return { ...r, origin: new URL(r.url).origin };
}

/** A session cookie obtained the way a browser gets it: the first request with the token. */
export async function cookieFor(url: string): Promise<string> {
  const res = await fetch(url);
  await res.text();
  const set = res.headers.get("set-cookie");
  if (res.status !== 200 || !set) throw new Error(`token exchange failed: ${res.status}`);
  return set.split(";")[0]!;
}

export const haveChromium = existsSync(CHROMIUM);

/** Debian's chromium, headless, with a fresh profile per launch (playwright makes one). */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import("playwright-core");
  mkdirSync(ARTIFACTS, { recursive: true });
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

export function shot(name: string): string {
  return join(ARTIFACTS, `${name}.png`);
}
