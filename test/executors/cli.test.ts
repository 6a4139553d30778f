import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { SEED } from "./fixtures.js";

const dir = mkdtempSync(join(tmpdir(), "psc-exec-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cli = (...args: string[]) =>
  execa("node_modules/.bin/tsx", ["src/cli/entry.ts", ...args], { reject: false, timeout: 60_000 });

function file(name: string, content: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof content === "string" ? content : JSON.stringify(content, null, 2));
  return p;
}

describe("parsl-sidecar executors", () => {
  it("check: OK for the seed file", { timeout: 60_000 }, async () => {
    const r = await cli("executors", "check", file("seed.json", SEED));
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("OK (cpu_executor, gpu_executor)");
  });

  it("check: a bad value exits 1 naming label, key and value", { timeout: 60_000 }, async () => {
    const r = await cli(
      "executors",
      "check",
      file("bad.json", { cpu: { POOL: "p", CORES_PER_WORKER: "four", TYPO_KEY: 1 } }),
    );
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(
      'error: `cpu.CORES_PER_WORKER`: expected a number greater than 0 (e.g. 4), got `"four"` (string)',
    );
    expect(r.stderr).toContain("warning: Unknown key `cpu.TYPO_KEY`");
    const j = await cli("executors", "check", "--json", join(dir, "bad.json"));
    expect(j.exitCode).toBe(1);
    expect(JSON.parse(j.stdout).errors[0]).toMatchObject({
      label: "cpu",
      key: "CORES_PER_WORKER",
      value: "four",
    });
  });

  it("check: broken JSON and a missing file are clear errors", { timeout: 60_000 }, async () => {
    const r = await cli("executors", "check", file("broken.json", '{"cpu": {"POOL": }'));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("broken.json is not valid JSON");
    const m = await cli("executors", "check", join(dir, "missing.json"));
    expect(m.exitCode).toBe(1);
    expect(m.stderr).toContain("Cannot read");
    expect(m.stderr).toContain("ENOENT");
  });

  it("schema prints JSON Schema; explain prints every key", { timeout: 60_000 }, async () => {
    const s = await cli("executors", "schema");
    expect(s.exitCode).toBe(0);
    expect(JSON.parse(s.stdout).$schema).toContain("json-schema.org");
    const e = await cli("executors", "explain");
    expect(e.exitCode).toBe(0);
    expect(e.stdout).toContain("SINGULARITY_CONTAINER_PATH");
    expect(e.stdout).toContain("What every pool must provide");
    const f = await cli(
      "executors",
      "explain",
      "--python",
      ".venv/bin/python",
      join(dir, "seed.json"),
    );
    expect(f.stdout).toMatch(/Python 3\.\d+\.x and Parsl \d{4}\.\d\d\.\d\d/);
  });
});
