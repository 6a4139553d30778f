// S3 on loopback: moto in server mode (PyPI moto[server]) with static test credentials.
import { join } from "node:path";
import getPort from "get-port";
import { spawnDaemon, waitForPort } from "./procs.js";
import { makeTempDir, registerStopper, removeTempDir } from "./registry.js";
import { venvBin } from "./venv.js";

export interface S3Server {
  /** `http://127.0.0.1:PORT`; use with `forcePathStyle: true`. */
  endpoint: string;
  host: string;
  port: number;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  pid: number;
  logPath: string;
  /** Environment for AWS SDKs and CLIs (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** Starts moto_server on a free loopback port and waits until it answers. */
export async function startS3(opts: { region?: string } = {}): Promise<S3Server> {
  const bin = venvBin("moto_server");
  const host = "127.0.0.1";
  const port = await getPort({ host });
  const dir = makeTempDir("s3");
  const logPath = join(dir, "moto.log");
  const region = opts.region ?? "us-east-1";
  const creds = { accessKeyId: "testbed-access-key", secretAccessKey: "testbed-secret-key" };
  const daemon = spawnDaemon(bin, ["-H", host, "-p", String(port)], {
    name: "moto_server",
    logPath,
    marker: dir,
    cwd: dir,
    env: { ...process.env, MOTO_ALLOW_NONEXISTENT_REGION: "true", AWS_DEFAULT_REGION: region },
  });
  const endpoint = `http://${host}:${port}`;
  const server: S3Server = {
    endpoint,
    host,
    port,
    region,
    ...creds,
    pid: daemon.pid,
    logPath,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_ACCESS_KEY_ID: creds.accessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
    },
    stop: async () => {
      unregister();
      await daemon.stop();
      removeTempDir(dir);
    },
  };
  const unregister = registerStopper(() => server.stop());
  try {
    await waitForPort(host, port, { daemon, timeoutMs: 30000 });
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}
