// local.conf parsing and the keys -> spec mapping (local.conf, executors.json entries, RPC params).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseLocalConf, readLocalConf } from "../../src/env/local-conf.js";
import { specFromParams } from "../../src/env/spec-params.js";
import { checkSpec, containerFromKeys, specFromKeys } from "../../src/env/spec.js";
import { isSidecarError } from "../../src/errors.js";
import { cleanupTmp, tmp } from "./helpers.js";

afterAll(cleanupTmp);

function thrown(fn: () => unknown): Error & { code?: string; data?: unknown } {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a throw");
}

describe("local.conf", () => {
  it("reads KEY=VALUE lines with comments, quotes, export and spaces", () => {
    const text = [
      "# local environment",
      "",
      "CONDA_ENV=parsl_py311",
      "export CONDA_DIR=/contrib/me/miniforge3   # shared install",
      'LOCAL_CONDA_YAML="./requirements/my env.yaml"',
      "INSTALL_CONDA='true'",
      'QUOTED="a \\"quoted\\" \\$HOME value"',
      "EMPTY=",
      "  INDENTED=yes",
      "UNQUOTED=two words",
      "HASH=a#b",
      "WINDOWS=crlf\r",
    ].join("\n");
    expect(parseLocalConf(text)).toEqual({
      CONDA_ENV: "parsl_py311",
      CONDA_DIR: "/contrib/me/miniforge3",
      LOCAL_CONDA_YAML: "./requirements/my env.yaml",
      INSTALL_CONDA: "true",
      QUOTED: 'a "quoted" $HOME value',
      EMPTY: "",
      INDENTED: "yes",
      UNQUOTED: "two words",
      HASH: "a#b",
      WINDOWS: "crlf",
    });
  });

  it("names the file and line of what it cannot read", () => {
    const err = thrown(() =>
      parseLocalConf('CONDA_ENV=x\nthis is not a setting\nY="open\n', "/w/local.conf"),
    );
    expect(isSidecarError(err, "ENV_INVALID")).toBe(true);
    expect(err.message).toBe(
      "Cannot read /w/local.conf: line 2: expected KEY=VALUE, got `this is not a setting`; line 3: unterminated double quote",
    );
  });

  it("a missing file is ENV_NOT_FOUND", () => {
    const err = thrown(() => readLocalConf("/nonexistent/local.conf"));
    expect(isSidecarError(err, "ENV_NOT_FOUND")).toBe(true);
    expect(err.message).toBe("Cannot read /nonexistent/local.conf: no such file");
  });
});

describe("keys to spec", () => {
  it("maps the old keys to a conda spec, files relative to the keys' file", () => {
    expect(
      specFromKeys(
        {
          CONDA_ENV: "p",
          CONDA_DIR: "/c/miniconda3/",
          INSTALL_CONDA: "True",
          LOCAL_CONDA_YAML: "./req/env.yaml",
        },
        "/work/wf",
      ),
    ).toEqual({
      backend: "conda",
      file: "/work/wf/req/env.yaml",
      name: "p",
      condaDir: "/c/miniconda3",
      installConda: true,
    });
  });

  it("maps the uv keys", () => {
    expect(
      specFromKeys(
        {
          ENV_NAME: "wf",
          LOCAL_REQUIREMENTS: "requirements.txt",
          UV_PYTHON: "3.11",
          INSTALL_UV: "yes",
          ENV_PREFIX: "~/envs/wf",
        },
        "/w",
      ),
    ).toEqual({
      backend: "uv",
      file: "/w/requirements.txt",
      name: "wf",
      prefix: "~/envs/wf",
      installUv: true,
      python: "3.11",
    });
    expect(specFromKeys({ POOL: "x" }, "/w")).toBeUndefined();
  });

  it("refuses bad values with the key named", () => {
    expect(
      thrown(() => specFromKeys({ LOCAL_CONDA_YAML: "e.yml", INSTALL_CONDA: "maybe" }, "/w"))
        .message,
    ).toBe("Expected `INSTALL_CONDA` to be true or false, got `maybe`");
    expect(
      thrown(() => specFromKeys({ ENV_BACKEND: "pixi", LOCAL_CONDA_YAML: "e.yml" }, "/w")).message,
    ).toBe("Expected `ENV_BACKEND` to be conda or uv, got `pixi`");
    expect(
      thrown(() => containerFromKeys({ CREATE_SINGULARITY_CONTAINER: "true" }, "/w")).message,
    ).toContain("SINGULARITY_CONTAINER_PATH is not set");
  });

  it("checks names and paths", () => {
    const base = { backend: "conda" as const, file: "/e.yml" };
    expect(thrown(() => checkSpec({ ...base, name: "team/env" })).message).toContain(
      "Invalid environment name `team/env`",
    );
    expect(thrown(() => checkSpec({ ...base, name: "has space" })).message).toContain(
      "Invalid environment name `has space`",
    );
    expect(thrown(() => checkSpec({ ...base, name: "base" })).message).toContain(
      "Refusing to ensure the conda `base` environment",
    );
    expect(
      thrown(() => checkSpec({ ...base, name: "ok", condaDir: "relative/conda" })).message,
    ).toBe(
      "Expected `condaDir` to be an absolute path on the host (or ~/...), got `relative/conda`",
    );
    expect(thrown(() => checkSpec(base)).message).toContain("needs a name (CONDA_ENV) or a prefix");
    expect(() =>
      checkSpec({ ...base, name: "parsl_py3.11-x+y", condaDir: "~/miniforge3" }),
    ).not.toThrow();
  });

  it("RPC params: local.conf first, explicit fields over it, container keys", () => {
    const dir = tmp();
    mkdirSync(join(dir, "req"));
    writeFileSync(
      join(dir, "local.conf"),
      "CONDA_ENV=from_conf\nCONDA_DIR=/opt/conda\nLOCAL_CONDA_YAML=req/env.yml\nCREATE_SINGULARITY_CONTAINER=true\nSINGULARITY_CONTAINER_PATH=/img/a.sif\nLOCAL_SINGULARITY_FILE=req/a.def\n",
    );
    const { spec, container } = specFromParams({
      target: "local",
      conf: join(dir, "local.conf"),
      name: "override",
      install_conda: true,
    });
    expect(spec).toEqual({
      backend: "conda",
      file: join(dir, "req/env.yml"),
      name: "override",
      condaDir: "/opt/conda",
      installConda: true,
    });
    expect(container).toEqual({ create: true, path: "/img/a.sif", file: join(dir, "req/a.def") });
    const uv = specFromParams(
      { target: "local", file: "reqs.txt", name: "n", find_links: ["/w"], no_index: true },
      "/cwd",
    ).spec;
    expect(uv).toEqual({
      backend: "uv",
      file: "/cwd/reqs.txt",
      name: "n",
      findLinks: ["/w"],
      noIndex: true,
    });
    expect(thrown(() => specFromParams({ target: "local" })).message).toContain(
      "No environment given",
    );
  });
});
