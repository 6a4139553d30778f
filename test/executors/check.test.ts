import { describe, expect, it } from "vitest";
import { checkExecutors, parseExecutorsText, assertExecutors } from "../../src/executors/check.js";
import { isSidecarError } from "../../src/errors.js";
import { SEED } from "./fixtures.js";

describe("checkExecutors", () => {
  it("accepts the seed format as it is, without warnings", () => {
    const res = checkExecutors(SEED);
    expect(res.errors).toEqual([]);
    expect(res.warnings).toEqual([]);
    expect(res.ok).toBe(true);
    expect(res.executors.cpu_executor!.INSTALL_CONDA).toBe(true);
    expect(res.executors.cpu_executor!.CORES_PER_WORKER).toBe(4);
  });

  it("accepts the old completed form (HOST_IP, WORKER_PORT_1/2) and warns the ports are ignored", () => {
    const res = checkExecutors({
      cpu: {
        ...SEED.cpu_executor,
        HOST_IP: "34.136.254.27",
        WORKER_PORT_1: 55351,
        WORKER_PORT_2: 55352,
      },
    });
    expect(res.ok).toBe(true);
    expect(res.warnings.map((w) => w.key)).toEqual(["WORKER_PORT_1", "WORKER_PORT_2"]);
    expect(res.warnings[0]!.message).toContain("`cpu.WORKER_PORT_1` is ignored");
  });

  it("takes booleans and numbers as JSON values or strings", () => {
    const res = checkExecutors({
      a: {
        POOL: "p",
        INSTALL_CONDA: false,
        CREATE_SINGULARITY_CONTAINER: "False",
        CORES_PER_WORKER: "2.5",
        MAX_BLOCKS: "3",
        EXCLUSIVE: "no",
        PROVIDER: "slurm",
      },
    });
    expect(res.errors).toEqual([]);
    expect(res.executors.a).toMatchObject({
      INSTALL_CONDA: false,
      CREATE_SINGULARITY_CONTAINER: false,
      CORES_PER_WORKER: 2.5,
      MAX_BLOCKS: 3,
      EXCLUSIVE: false,
    });
  });

  it("names label, key and value in each error", () => {
    const res = checkExecutors({
      cpu: {
        POOL: "p",
        CORES_PER_WORKER: "four",
        INSTALL_CONDA: "maybe",
        PROVIDER: "sge",
        WALLTIME: "1h",
        RUN_DIR: "relative/dir",
      },
    });
    expect(res.ok).toBe(false);
    const byKey = Object.fromEntries(res.errors.map((e) => [e.key, e]));
    expect(byKey.CORES_PER_WORKER!.message).toBe(
      '`cpu.CORES_PER_WORKER`: expected a number greater than 0 (e.g. 4), got `"four"` (string)',
    );
    expect(byKey.INSTALL_CONDA!.message).toContain("`cpu.INSTALL_CONDA`: expected true or false");
    expect(byKey.INSTALL_CONDA!.message).toContain('got `"maybe"` (string)');
    expect(byKey.PROVIDER!.message).toContain("expected one of local, slurm, pbspro");
    expect(byKey.WALLTIME!.message).toContain("HH:MM:SS");
    expect(byKey.RUN_DIR!.message).toContain("absolute path");
    for (const e of res.errors) expect(e.label).toBe("cpu");
  });

  it("keeps unknown keys and warns, suggesting the known key", () => {
    const res = checkExecutors({ cpu: { POOL: "p", CORES_PER_WORKR: 3, MY_OWN: "x" } });
    expect(res.ok).toBe(true);
    expect(res.executors.cpu).toMatchObject({ CORES_PER_WORKR: 3, MY_OWN: "x" });
    expect(res.warnings.find((w) => w.key === "CORES_PER_WORKR")!.message).toContain(
      "did you mean `CORES_PER_WORKER`?",
    );
    expect(res.warnings.find((w) => w.key === "MY_OWN")!.message).toBe(
      "Unknown key `cpu.MY_OWN` (kept as it is)",
    );
  });

  it("warns about provider options that the chosen provider ignores", () => {
    const res = checkExecutors({
      a: { POOL: "p", PARTITION: "x" },
      b: { POOL: "p", PROVIDER: "pbspro", QUEUE: "q", PARTITION: "x" },
    });
    expect(res.ok).toBe(true);
    expect(res.warnings.map((w) => `${w.label}.${w.key}`)).toEqual(["a.PARTITION", "b.PARTITION"]);
  });

  it("refuses documents that are not objects of executors", () => {
    expect(checkExecutors([]).errors[0]!.message).toContain(
      "to be an object whose keys are executor labels",
    );
    expect(checkExecutors({}).errors[0]!.message).toContain("no executors");
    expect(checkExecutors({ a: "x" }).errors[0]!.message).toBe(
      'Expected `a` to be an object of settings ({"POOL": ...}), got `"x"` (string)',
    );
    expect(checkExecutors({ a: {} }).errors[0]!.message).toContain(
      "`a.POOL`: each executor needs POOL",
    );
    expect(checkExecutors({ "bad label": { POOL: "p" } }).errors[0]!.message).toContain(
      'Executor label `"bad label"` (string) is not usable',
    );
    expect(
      checkExecutors({ a: { POOL: "p", MIN_BLOCKS: 3, MAX_BLOCKS: 2 } }).errors[0]!.message,
    ).toContain("MIN_BLOCKS must not exceed MAX_BLOCKS");
  });

  it("reports errors of several labels at once", () => {
    const res = checkExecutors({
      a: { POOL: "p", CORES_PER_WORKER: 0 },
      "x y": {},
      b: { SSH_TARGET: "local", MAX_BLOCKS: -1 },
    });
    expect(res.errors.map((e) => e.label)).toEqual(["a", "x y", "b"]);
  });

  it("accepts a $schema key for editors", () => {
    expect(checkExecutors({ $schema: "./executors.schema.json", a: { POOL: "p" } }).ok).toBe(true);
  });
});

describe("parseExecutorsText / assertExecutors", () => {
  it("says where the JSON is broken", () => {
    try {
      parseExecutorsText('{\n  "a": {"POOL": "p",}\n}', "ex.json");
      expect.unreachable();
    } catch (err) {
      expect(isSidecarError(err, "EXECUTORS_INVALID")).toBe(true);
      expect((err as Error).message).toMatch(/^ex\.json is not valid JSON/);
    }
  });

  it("throws one EXECUTORS_INVALID error listing every problem", () => {
    try {
      assertExecutors({ a: { POOL: "p", CORES_PER_WORKER: "x" }, b: {} }, "ex.json");
      expect.unreachable();
    } catch (err) {
      expect(isSidecarError(err, "EXECUTORS_INVALID")).toBe(true);
      expect((err as Error).message).toContain("ex.json is invalid: `a.CORES_PER_WORKER`");
      expect((err as Error).message).toContain("`b.POOL`");
    }
  });
});
