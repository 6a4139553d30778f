// The conda backend against the stand-in conda (test/fixtures/conda): exact command lines, the
// YAML copy, the hash skip, the lock, unfinished ensures, and the bad inputs of the issue.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ensureEnv } from "../../src/env/ensure.js";
import type { EnvSpec } from "../../src/env/spec.js";
import { LocalHost } from "../../src/ssh/local-host.js";
import { warnSkip } from "../testbed/hooks.js";
import {
  cleanupTmp,
  fakeCondaDir,
  FIXTURES,
  makeReadOnly,
  rejection,
  REPO,
  standinCalls,
  tmp,
  VENV_PY,
} from "./helpers.js";

afterAll(cleanupTmp);
const host = new LocalHost();

const YAML = `# the user's environment, with comments kept
name: my-analysis   # conda would put it here; the sidecar passes -p instead
channels:
  - conda-forge
dependencies:
  - python=3.11
  - numpy          # a package whose name contains "name": namer
  - pip
  - pip:
      - tqdm
prefix: /somewhere/else/entirely
`;

function setup(yaml = YAML): { dir: string; condaDir: string; file: string; spec: EnvSpec } {
  const dir = tmp();
  const condaDir = join(dir, "conda");
  fakeCondaDir(condaDir);
  const file = join(dir, "env.yaml");
  writeFileSync(file, yaml);
  return { dir, condaDir, file, spec: { backend: "conda", name: "parsl_py311", condaDir, file } };
}

describe("conda backend (stand-in conda)", { timeout: 60_000 }, () => {
  it("creates with `conda env create -p <CONDA_DIR>/envs/<name> -f <copy> --json`, then skips by hash, then updates", async () => {
    const { condaDir, file, spec } = setup();
    const before = readFileSync(file);
    const progress: string[] = [];
    const first = await ensureEnv(host, spec, {
      onProgress: (p) => progress.push(`${p.phase}: ${p.message}`),
    });
    const prefix = join(condaDir, "envs/parsl_py311");
    expect(first).toMatchObject({
      action: "created",
      prefix,
      python: expect.stringMatching(/^3\.\d+\.\d+$/),
      parsl: expect.any(String),
      dropped: ["name", "prefix"],
    });
    let calls = standinCalls(condaDir);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.argv.slice(0, 4)).toEqual(["env", "create", "-p", prefix]);
    expect(calls[0]!.argv[4]).toBe("-f");
    expect(calls[0]!.argv[5]).toMatch(/\/parsl-sidecar-env\.[^/]+\/environment\.yml$/);
    expect(calls[0]!.argv.slice(6)).toEqual(["--json"]);
    // the copy leaves out exactly name: and prefix:, keeps the comments and the line mentioning "name"
    const copy = calls[0]!.file_content!;
    expect(copy).not.toMatch(/^name:/m);
    expect(copy).not.toMatch(/^prefix:/m);
    expect(copy).toContain('- numpy          # a package whose name contains "name": namer');
    expect(copy).toContain("# the user's environment, with comments kept");
    expect(copy).toContain("- tqdm");
    // the user's file is untouched, byte for byte, and the temp copy is gone
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(existsSync(calls[0]!.argv[5]!)).toBe(false);
    expect(
      progress.some(
        (l) =>
          l.startsWith("create: fetching python 50%") || l.startsWith("create: fetching python"),
      ),
    ).toBe(true);
    const record = JSON.parse(
      readFileSync(join(prefix, "conda-meta/parsl-sidecar.json"), "utf8"),
    ) as Record<string, unknown>;
    expect(record).toMatchObject({
      hash: first.hash,
      backend: "conda",
      file,
      tool: join(condaDir, "bin/conda"),
      python: first.python,
      parsl: first.parsl,
    });
    expect(first.workerInit).toBe(
      `export PATH=${prefix}/bin:"$PATH"; export CONDA_PREFIX=${prefix}; export CONDA_DEFAULT_ENV=parsl_py311; export CONDA_SHLVL=1; export CONDA_EXE=${condaDir}/bin/conda; unset PYTHONHOME`,
    );

    const second = await ensureEnv(host, spec);
    expect(second).toMatchObject({
      action: "unchanged",
      hash: first.hash,
      python: first.python,
      parsl: first.parsl,
      tool: null,
    });
    expect(standinCalls(condaDir)).toHaveLength(1);

    writeFileSync(file, YAML.replace("  - pip\n", "  - pip\n  - scipy\n"));
    const third = await ensureEnv(host, spec);
    expect(third.action).toBe("updated");
    calls = standinCalls(condaDir);
    expect(calls).toHaveLength(2);
    expect(calls[1]!.argv.slice(0, 4)).toEqual(["env", "update", "-p", prefix]);
    expect(calls[1]!.argv.at(-1)).toBe("--json");
    expect(calls[1]!.file_content).toContain("- scipy");
  });

  it("--force runs conda again even when the hash matches", async () => {
    const { condaDir, spec } = setup("dependencies:\n  - python\n");
    await ensureEnv(host, spec);
    expect((await ensureEnv(host, spec, { force: true })).action).toBe("updated");
    expect(standinCalls(condaDir).map((c) => c.argv[1])).toEqual(["create", "update"]);
  });

  it("passes the user's bytes unchanged when there is no name:/prefix: to drop", async () => {
    const yaml = "dependencies:\n  - python=3.11\n";
    const { condaDir, spec } = setup(yaml);
    const res = await ensureEnv(host, spec);
    expect(res.dropped).toEqual([]);
    expect(standinCalls(condaDir)[0]!.file_content).toBe(yaml);
  });

  it("uses micromamba's `create -y -p ... -f ... --json` / `install` forms", async () => {
    const dir = tmp();
    const condaDir = join(dir, "mm");
    fakeCondaDir(condaDir, { tool: "micromamba" });
    const file = join(dir, "env.yml");
    writeFileSync(file, "dependencies:\n  - python\n");
    const spec: EnvSpec = { backend: "conda", name: "mm1", condaDir, file };
    await ensureEnv(host, spec);
    writeFileSync(file, "dependencies:\n  - python\n  - numpy\n");
    const res = await ensureEnv(host, spec);
    expect(res.action).toBe("updated");
    const calls = standinCalls(condaDir).map((c) => [
      c.tool,
      ...c.argv.filter((a) => !a.includes("parsl-sidecar-env.")),
    ]);
    const prefix = join(condaDir, "envs/mm1");
    expect(calls).toEqual([
      ["micromamba", "create", "-y", "-p", prefix, "-f", "--json"],
      ["micromamba", "install", "-y", "-p", prefix, "-f", "--json"],
    ]);
  });

  it("finds conda on PATH without CONDA_DIR and puts the env in its root's envs/", async () => {
    const dir = tmp();
    const root = join(dir, "pathconda");
    fakeCondaDir(root);
    const file = join(dir, "e.yml");
    writeFileSync(file, "dependencies:\n  - python\n");
    const res = await ensureEnv(
      host,
      { backend: "conda", name: "onpath", file },
      { hostEnv: { PATH: `${root}/bin:${process.env.PATH}` } },
    );
    expect(res.prefix).toBe(join(root, "envs/onpath"));
    expect(res.tool).toMatchObject({
      kind: "conda",
      path: join(root, "bin/conda"),
      installed: false,
    });
  });

  it("two concurrent ensures of the same env: one creates, the other waits for the lock, then finds it done", async () => {
    const { condaDir, spec } = setup();
    const [a, b] = await Promise.all([ensureEnv(host, spec), ensureEnv(host, spec)]);
    const actions = [a.action, b.action].sort();
    expect(actions).toEqual(["created", "unchanged"]);
    expect((a.action === "unchanged" ? a : b).waited).toBe(true);
    expect(standinCalls(condaDir)).toHaveLength(1);
  });

  it("an ensure stopped midway is not recorded; the next one runs conda again", async () => {
    const { condaDir, spec, file } = setup("dependencies:\n  - python\n  - standin-slow\n");
    const abort = new AbortController();
    const running = ensureEnv(host, spec, {
      signal: abort.signal,
      onProgress: (p) => {
        if (p.message.startsWith("fetching standin-slow")) abort.abort();
      },
    });
    const err = await rejection(running);
    expect(err.code).toBe("SHUTTING_DOWN");
    expect(err.message).toContain("not recorded as done");
    const prefix = join(condaDir, "envs/parsl_py311");
    expect(existsSync(join(prefix, "conda-meta"))).toBe(true);
    expect(existsSync(join(prefix, "conda-meta/parsl-sidecar.json"))).toBe(false);
    writeFileSync(file, "dependencies:\n  - python\n");
    const again = await ensureEnv(host, spec);
    expect(again.action).toBe("updated");
    expect(standinCalls(condaDir).map((c) => c.argv[1])).toEqual(["create", "update"]);
  });

  it("a sidecar killed midway (SIGKILL): the lock holder stops the running conda, nothing is recorded, the next ensure proceeds", async () => {
    const { condaDir, spec, file } = setup("dependencies:\n  - python\n  - standin-slow\n");
    // node itself (not the tsx wrapper, which would survive as a parent without its child)
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(FIXTURES, "ensure-child.ts"), JSON.stringify(spec)],
      { cwd: REPO, stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    await new Promise<void>((res, rej) => {
      child.stdout!.on("data", (b: Buffer) => {
        out += b.toString();
        if (out.includes("fetching standin-slow")) res();
      });
      child.on("exit", () => rej(new Error(`the child ended early:\n${out}`)));
    });
    const prefix = join(condaDir, "envs/parsl_py311");
    const condaRunning = (): boolean => {
      for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
        try {
          if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(prefix)) return true;
        } catch {
          // gone meanwhile
        }
      }
      return false;
    };
    expect(condaRunning()).toBe(true);
    child.kill("SIGKILL");
    const deadline = Date.now() + 20_000;
    while (condaRunning() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(condaRunning()).toBe(false);
    expect(existsSync(join(prefix, "conda-meta/parsl-sidecar.json"))).toBe(false);
    writeFileSync(file, "dependencies:\n  - python\n");
    const next = await ensureEnv(host, spec, { lockTimeoutMs: 20_000 });
    expect(next.action).toBe("updated");
  });

  it("a failing conda (PackagesNotFoundError) is ENV_FAILED with conda's message and leaves no record; an old record is dropped", async () => {
    const { condaDir, spec, file } = setup("dependencies:\n  - python\n");
    await ensureEnv(host, spec);
    const record = join(condaDir, "envs/parsl_py311/conda-meta/parsl-sidecar.json");
    expect(existsSync(record)).toBe(true);
    writeFileSync(file, "dependencies:\n  - python\n  - standin-missing-pkg\n");
    const err = await rejection(ensureEnv(host, spec));
    expect(err.code).toBe("ENV_FAILED");
    expect(err.message).toContain("`conda env update` of");
    expect(err.message).toContain(
      "PackagesNotFoundError: The following packages are not available from current channels",
    );
    expect(err.message).toContain("- standin-missing-pkg");
    expect(existsSync(record)).toBe(false);
    // back to the first file: the environment is not trusted any more, so conda runs again
    writeFileSync(file, "dependencies:\n  - python\n");
    expect((await ensureEnv(host, spec)).action).toBe("updated");
  });

  it("a YAML that does not parse is ENV_INVALID naming the file and line; conda never runs", async () => {
    const { condaDir, spec, file } = setup("name: x\ndependencies:\n  - python\n\t- numpy\n");
    const err = await rejection(ensureEnv(host, spec));
    expect(err.code).toBe("ENV_INVALID");
    expect(err.message).toMatch(
      new RegExp(
        `^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:4:1: the conda environment file is not valid YAML: Tabs are not allowed as indentation$`,
      ),
    );
    expect(err.data).toMatchObject({ file, line: 4 });
    expect(standinCalls(condaDir)).toEqual([]);
  });

  it("a YAML without dependencies, or not a mapping, is ENV_INVALID", async () => {
    expect(
      (await rejection(ensureEnv(host, setup("channels: [conda-forge]\n").spec))).message,
    ).toContain("has no `dependencies:` list");
    expect((await rejection(ensureEnv(host, setup("- python\n").spec))).message).toContain(
      "must be a mapping",
    );
  });

  it("an environment name with a slash is ENV_INVALID before anything runs", async () => {
    const { condaDir, spec } = setup();
    const err = await rejection(ensureEnv(host, { ...spec, name: "team/env" }));
    expect(err.code).toBe("ENV_INVALID");
    expect(err.message).toContain("Invalid environment name `team/env`");
    expect(standinCalls(condaDir)).toEqual([]);
  });

  it("a missing YAML file is ENV_NOT_FOUND naming it", async () => {
    const { spec, dir } = setup();
    const err = await rejection(ensureEnv(host, { ...spec, file: join(dir, "nope.yml") }));
    expect(err.code).toBe("ENV_NOT_FOUND");
    expect(err.message).toContain("nope.yml: no such file");
  });

  it("no conda in CONDA_DIR and INSTALL_CONDA false: ENV_NOT_FOUND saying how to fix it", async () => {
    const { spec, dir } = setup();
    const err = await rejection(ensureEnv(host, { ...spec, condaDir: join(dir, "empty-conda") }));
    expect(err.code).toBe("ENV_NOT_FOUND");
    expect(err.message).toContain("Set INSTALL_CONDA=true");
  });

  it("refuses a prefix that exists and is not a conda environment, and leaves it alone", async () => {
    const { spec, dir } = setup();
    const prefix = join(dir, "notanenv");
    mkdirSync(prefix);
    writeFileSync(join(prefix, "precious.txt"), "keep me");
    const err = await rejection(ensureEnv(host, { ...spec, prefix }));
    expect(err.code).toBe("ENV_FAILED");
    expect(err.message).toContain("is not a conda environment; refusing to touch it");
    expect(readdirSync(prefix)).toEqual(["precious.txt"]);
  });

  it("an unwritable CONDA_DIR is a clear ENV_FAILED (read-only mount, so root is refused too)", async (ctx) => {
    const { spec, condaDir } = setup();
    const envs = join(condaDir, "envs");
    const undo = makeReadOnly(envs);
    if (!undo)
      return ctx.skip(warnSkip("unwritable CONDA_DIR test", "cannot mount a read-only tmpfs here"));
    try {
      const err = await rejection(ensureEnv(host, spec));
      expect(err.code).toBe("ENV_FAILED");
      expect(err.message).toContain(`Cannot write to ${envs} on local`);
      expect(err.message).toContain(`CONDA_DIR=${condaDir}`);
      expect(standinCalls(condaDir)).toEqual([]);
    } finally {
      undo();
    }
  });

  it("the stand-in itself rejects what conda rejects (arguments checked like conda's argparse)", () => {
    const dir = tmp();
    const tool = fakeCondaDir(join(dir, "c"));
    const run = (...args: string[]): { code: number; out: string } => {
      try {
        return {
          code: 0,
          out: execFileSync(tool, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }),
        };
      } catch (e) {
        const x = e as { status: number; stdout: string; stderr: string };
        return { code: x.status, out: `${x.stdout}${x.stderr}` };
      }
    };
    expect(run("env", "create", "-n", "a", "-p", "/x", "-f", "f")).toMatchObject({
      code: 2,
      out: expect.stringContaining("not allowed with argument -n/--name"),
    });
    expect(run("env", "update", "--bogus")).toMatchObject({
      code: 2,
      out: expect.stringContaining("unrecognized arguments: --bogus"),
    });
    expect(
      run("env", "create", "-p", join(dir, "p"), "-f", join(dir, "missing.yml"), "--json"),
    ).toMatchObject({
      code: 1,
      out: expect.stringContaining('"exception_name": "EnvironmentFileNotFound"'),
    });
    writeFileSync(join(dir, "bad.yml"), "dependencies: [\n");
    expect(
      run("env", "create", "-p", join(dir, "p"), "-f", join(dir, "bad.yml"), "--json"),
    ).toMatchObject({ code: 1, out: expect.stringContaining("invalid YAML") });
    expect(
      run("env", "update", "-p", join(dir, "nothere"), "-f", join(FIXTURES, "conda")),
    ).toMatchObject({ code: 1 });
    void VENV_PY;
  });
});
