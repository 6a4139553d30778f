import { describe, expect, it } from "vitest";
import { z } from "zod";
import { explainKeys, explainPools, explainText } from "../../src/executors/explain.js";
import { KEYS } from "../../src/executors/keys.js";
import { executorsJsonSchema } from "../../src/executors/schema.js";
import { resolveExecutor } from "../../src/executors/resolve.js";
import { SEED } from "./fixtures.js";

describe("one source for schema and explanation", () => {
  it("every key has a description in the JSON Schema and in explain", () => {
    const schema = executorsJsonSchema() as {
      additionalProperties: { properties: Record<string, { description?: string }> };
    };
    const props = schema.additionalProperties.properties;
    for (const k of KEYS) {
      expect(props[k.name]?.description, k.name).toContain(k.description);
    }
    expect(explainKeys().map((k) => k.name)).toEqual(KEYS.map((k) => k.name));
    const text = explainText();
    for (const k of KEYS) expect(text).toContain(k.name);
  });

  it("JSON Schema is valid draft 2020-12 and allows unknown keys", () => {
    const schema = executorsJsonSchema() as Record<string, unknown>;
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    const entry = schema.additionalProperties as Record<string, unknown>;
    expect(entry.additionalProperties).not.toBe(false);
    // booleans and numbers may be strings in the input
    const props = entry.properties as Record<string, { anyOf?: unknown[] }>;
    expect(JSON.stringify(props.INSTALL_CONDA)).toContain("boolean");
    expect(JSON.stringify(props.INSTALL_CONDA)).toContain("string");
    expect(z.toJSONSchema).toBeTypeOf("function");
  });
});

describe("explain FILE", () => {
  it("says what each pool must provide, with this machine's versions", () => {
    const pools = explainPools(
      { ...SEED, slurm_pool: { POOL: "hpc", PROVIDER: "slurm", PYTHON: "/opt/py/bin/python3" } },
      { python: "3.11.2", parsl: "2026.10.26" },
    );
    expect(pools.map((p) => p.label)).toEqual(["cpu_executor", "gpu_executor", "slurm_pool"]);
    const cpu = pools[0]!.requirements.join("\n");
    expect(cpu).toContain("SSH access as `koehr_cpu`");
    expect(cpu).toContain("/contrib/Alvaro.Vidal/miniconda3/envs/parsl_py39/bin/python");
    expect(cpu).toContain("Python 3.11.x and Parsl 2026.10.26");
    const slurm = pools[2]!.requirements.join("\n");
    expect(slurm).toContain("sbatch, squeue (or sacct), scancel");
    expect(slurm).toContain("relay");
    expect(slurm).toContain("`/opt/py/bin/python3` on the head node and every compute node");
  });

  it("lists the invalid entries instead of failing", () => {
    const text = explainText({ a: { POOL: "p" }, b: { POOL: "q", CORES_PER_WORKER: "x" } });
    expect(text).toContain("Invalid: `b.CORES_PER_WORKER`");
    expect(text).toContain("Executor a: pool `p`");
  });
});

describe("resolveExecutor", () => {
  it("applies defaults and derives the target", () => {
    const r = resolveExecutor("cpu", { POOL: "koehr_cpu", RUN_DIR: "/home/u/tmp/" });
    expect(r).toMatchObject({
      target: "koehr_cpu",
      provider: "local",
      runDir: "/home/u/tmp",
      workerLogdirRoot: "/home/u/tmp",
      scriptDir: "/home/u/tmp/submit_scripts",
      python: "python3",
      maxBlocks: 1,
      initBlocks: 1,
      isLocal: false,
    });
    expect(resolveExecutor("x", { POOL: "p", SSH_TARGET: "local" }).isLocal).toBe(true);
    expect(
      resolveExecutor("x", {
        POOL: "p_q",
        RESOLVER: "parallelworks",
        HOST_IP: "10.0.0.5",
        HOST_USER: "me",
      }).target,
    ).toBe("me@10.0.0.5");
    expect(
      resolveExecutor("x", {
        POOL: "p",
        PROVIDER: "slurm",
        PARTITION: "debug",
        EXCLUSIVE: false,
        QUEUE: "ignored",
      }).providerOptions,
    ).toEqual({ partition: "debug", exclusive: false });
  });
});
