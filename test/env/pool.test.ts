// env ensure on a pool over real SSH (the test bed's sshd on loopback, SshConnections): uv for
// real with a Parsl worker started there, the conda stand-in and its installer copied over,
// containers, and a pool without python3.
import { createHash } from "node:crypto";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureContainer } from "../../src/env/container.js";
import { ensureEnv } from "../../src/env/ensure.js";
import { EnvService } from "../../src/env/service.js";
import type { EnvSpec } from "../../src/env/spec.js";
import type { HostLease } from "../../src/ssh/host.js";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { sshSetup, type SshSetup } from "../ssh/helpers.js";
import {
  cleanupTmp,
  fakeCondaDir,
  FIXTURES,
  makeInstaller,
  pathWithoutPython,
  rejection,
  standinCalls,
  tmp,
  UV,
  VENV_PY,
  wheelhouse,
} from "./helpers.js";
import { execFileSync } from "node:child_process";

stopAllAfterAll();
afterAll(cleanupTmp);

let setup: SshSetup;
let host: HostLease;
let wheels = "";
let dir = "";
const parslVersion = execFileSync(
  VENV_PY,
  ["-c", "import importlib.metadata as m; print(m.version('parsl'))"],
  { encoding: "utf8" },
).trim();

beforeAll(async () => {
  wheels = wheelhouse();
  dir = tmp("psc-env-pool-");
  setup = await sshSetup();
  host = await setup.pool.acquire("pool", "env-test");
}, 300_000);

afterAll(async () => {
  host?.release();
  await setup?.pool.close();
});

describe("env on a pool over SSH (loopback sshd)", { timeout: 180_000 }, () => {
  it("uv: creates the venv there, a Parsl worker starts there, the second ensure is a no-op", async () => {
    writeFileSync(join(dir, "requirements.txt"), `parsl==${parslVersion}\n`);
    const spec: EnvSpec = {
      backend: "uv",
      name: "wf",
      prefix: join(dir, "pool-envs/wf"),
      file: join(dir, "requirements.txt"),
      uv: UV,
      findLinks: [wheels],
      noIndex: true,
    };
    const progress: string[] = [];
    const first = await ensureEnv(host, spec, {
      onProgress: (p) => progress.push(`${p.target} ${p.phase}`),
    });
    expect(first).toMatchObject({
      target: "pool",
      action: "created",
      parsl: parslVersion,
      python: expect.stringMatching(/^3\.\d+\.\d+$/),
    });
    expect(progress).toContain("pool install");
    const worker = await host.exec(
      `${first.workerInit}; process_worker_pool.py --help && python -c 'import parsl, sys; print("in", sys.prefix, parsl.__version__)'`,
    );
    expect(worker.exitCode).toBe(0);
    expect(worker.stdout).toContain("usage: process_worker_pool.py");
    expect(worker.stdout).toContain(`in ${spec.prefix} ${parslVersion}`);
    const second = await ensureEnv(host, spec);
    expect(second).toMatchObject({
      action: "unchanged",
      hash: first.hash,
      parsl: parslVersion,
      tool: null,
    });
  });

  it("uv: a pool's environment gets this machine's Parsl (the pin), unless the params name one", async () => {
    // "this machine" runs the oldest supported Parsl; the requirements leave Parsl unpinned, so
    // without the pin uv would take the newest in the wheelhouses
    const older = "2025.6.30";
    const oldWheels = wheelhouse(older);
    const caller = join(dir, "caller");
    execFileSync(UV, ["venv", "-q", "--python", VENV_PY, caller]);
    execFileSync(UV, [
      "pip",
      "install",
      "-q",
      "--python",
      join(caller, "bin/python"),
      `parsl==${older}`,
      "--find-links",
      oldWheels,
      "--no-index",
    ]);
    writeFileSync(join(dir, "unpinned.txt"), "parsl\n");
    const params = {
      target: "pool",
      file: join(dir, "unpinned.txt"),
      prefix: join(dir, "pool-envs/pinned"),
      uv: UV,
      find_links: [wheels, oldWheels],
      no_index: true,
    };
    const service = new EnvService(setup.pool);
    const saved = process.env.PARSL_SIDECAR_PYTHON;
    process.env.PARSL_SIDECAR_PYTHON = join(caller, "bin/python");
    try {
      const first = await service.ensure(params);
      expect(first.env).toMatchObject({ action: "created", parsl: older });
      expect((await service.describe(params)).state).toBe("current");
      // a version named in the params wins (`env ensure --parsl X`)
      const named = await service.ensure({ ...params, parsl: parslVersion });
      expect(named.env).toMatchObject({ action: "updated", parsl: parslVersion });
    } finally {
      if (saved === undefined) delete process.env.PARSL_SIDECAR_PYTHON;
      else process.env.PARSL_SIDECAR_PYTHON = saved;
    }
  });

  it("conda stand-in: the YAML copy travels over SSH, the user's file stays as it was, hash skip", async () => {
    const condaDir = join(dir, "conda");
    fakeCondaDir(condaDir);
    const file = join(dir, "env.yml");
    const yaml = "name: whatever\ndependencies:\n  - python=3.11\n";
    writeFileSync(file, yaml);
    const spec: EnvSpec = { backend: "conda", name: "remote1", condaDir, file };
    const res = await ensureEnv(host, spec);
    expect(res).toMatchObject({
      action: "created",
      prefix: join(condaDir, "envs/remote1"),
      dropped: ["name"],
    });
    const calls = standinCalls(condaDir);
    expect(calls.map((c) => c.argv.slice(0, 4))).toEqual([
      ["env", "create", "-p", join(condaDir, "envs/remote1")],
    ]);
    expect(calls[0]!.file_content).toBe("dependencies:\n  - python=3.11\n");
    expect(readFileSync(file, "utf8")).toBe(yaml);
    expect((await ensureEnv(host, spec)).action).toBe("unchanged");
    expect(standinCalls(condaDir)).toHaveLength(1);
  });

  it("installs conda on the pool from a local installer copied over SFTP (checksum checked on both sides)", async () => {
    const installer = makeInstaller(join(dir, "Miniforge3.sh"));
    // past 1 MiB the copy goes over SFTP rather than through a command's stdin
    appendFileSync(installer, `\n# padding\n${"#".repeat(2 * 1024 * 1024)}\n`);
    const sha = createHash("sha256").update(readFileSync(installer)).digest("hex");
    const file = join(dir, "env2.yml");
    writeFileSync(file, "dependencies:\n  - python\n");
    const condaDir = join(dir, "pool-miniforge");
    const res = await ensureEnv(host, {
      backend: "conda",
      name: "p2",
      condaDir,
      file,
      installConda: true,
      installer: { file: installer, sha256: sha },
    });
    expect(res.tool).toEqual({ kind: "conda", path: join(condaDir, "bin/conda"), installed: true });
    expect(res.action).toBe("created");
  });

  it("a pool without python3 is a clear error for the uv backend", async () => {
    const bin = pathWithoutPython(dir);
    const err = await rejection(
      ensureEnv(
        host,
        {
          backend: "uv",
          name: "x",
          prefix: join(dir, "nopy"),
          file: join(dir, "requirements.txt"),
          uv: UV,
        },
        { hostEnv: { PATH: bin } },
      ),
    );
    expect(err.code).toBe("ENV_NOT_FOUND");
    expect(err.message).toMatch(
      /^No python3 on pool \(PATH=.*nopython-bin\): the uv backend makes its environment from the host's Python/,
    );
  });

  it("containers: neither singularity nor apptainer installed is a clear error (for real); with the stand-in the image is built", async () => {
    const def = join(dir, "container.def");
    writeFileSync(def, "Bootstrap: docker\nFrom: python:3.11-slim\n");
    const image = join(dir, "images/app.sif");
    const err = await rejection(ensureContainer(host, { create: true, path: image, file: def }));
    expect(err.code).toBe("ENV_NOT_FOUND");
    expect(err.message).toContain(
      `Cannot build ${image} on pool: neither singularity nor apptainer is installed there`,
    );
    const res = await ensureContainer(
      host,
      { create: true, path: image, file: def },
      { hostEnv: { PATH: `${FIXTURES}:/usr/bin:/bin` } },
    );
    expect(res).toMatchObject({
      action: "built",
      exists: true,
      builder: join(FIXTURES, "singularity"),
    });
    expect(readFileSync(image, "utf8")).toBe(`SIF-STANDIN\n${readFileSync(def, "utf8")}`);
  });
});
