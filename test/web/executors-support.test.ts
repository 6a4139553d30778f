// What the form gets from src/executors: the check's issues with paths and severities, and the
// completion preview (values known now, notes for the rest) with ~/.ssh/config applied.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkExecutors, resolveExecutor } from "../../src/executors/index.js";
import {
  checkForPage,
  completionPreview,
  sshConfigLookup,
} from "../../src/web/executors-support.js";

const dir = mkdtempSync(join(tmpdir(), "psc-websupport-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const byKey = (
  vals: Array<{ key: string; value: unknown; note: string }>,
): Record<string, { value: unknown; note: string }> =>
  Object.fromEntries(vals.map((v) => [v.key, v]));

describe("executors support for the page", { timeout: 10_000 }, () => {
  it("puts each issue of `executors check` at label.key, errors apart from warnings, in the CLI's words", () => {
    const doc = {
      cpu: { POOL: "p", CORES_PER_WORKER: "abc", FOO: 1 },
      gpu: { CORES_PER_WORKER: 2 },
    };
    const page = checkForPage(doc);
    const cli = checkExecutors(doc);
    expect(page.ok).toBe(false);
    expect(page.issues.filter((i) => i.severity === "error").map((i) => i.message)).toEqual(
      cli.errors.map((e) => e.message),
    );
    expect(page.issues.filter((i) => i.severity === "warning").map((i) => i.message)).toEqual(
      cli.warnings.map((e) => e.message),
    );
    expect(page.issues.map((i) => i.path)).toEqual(["cpu.CORES_PER_WORKER", "gpu.POOL", "cpu.FOO"]);
    expect(checkForPage("nope").issues[0]).toMatchObject({ path: "", severity: "error" });
  });

  it("previews completion: known values shown, the rest explained; nothing opened", () => {
    const local = byKey(completionPreview(resolveExecutor("a", { SSH_TARGET: "local" })));
    expect(local.HOST_IP!.value).toBe("127.0.0.1");
    expect(local.TUNNEL_ID!.note).toMatch(/no tunnel/);
    const head = byKey(completionPreview(resolveExecutor("b", { POOL: "cluster" })));
    expect(head.DIAL_ADDRESS!.value).toBe("127.0.0.1");
    expect(head.WORKER_PORT!.value).toBeNull();
    expect(head.WORKER_PORT!.note).toMatch(/picked when the run starts/);
    const slurm = byKey(
      completionPreview(resolveExecutor("c", { POOL: "cluster", PROVIDER: "slurm" })),
    );
    expect(slurm.DIAL_ADDRESS!.value).toBeNull();
    expect(slurm.DIAL_ADDRESS!.note).toMatch(/relay/);
    const done = byKey(
      completionPreview(
        resolveExecutor("d", { POOL: "x", HOST_IP: "10.0.0.9", WORKER_PORT: 55233 }),
      ),
    );
    expect(done.HOST_IP!.value).toBe("10.0.0.9");
    expect(done.WORKER_PORT!.value).toBe(55233);
  });

  it("takes HOST_IP and HOST_USER from the ssh config the sidecar uses", () => {
    const cfg = join(dir, "ssh_config");
    writeFileSync(cfg, "Host koehr_cpu\n  HostName 10.1.2.3\n  User alvaro\n");
    const before = process.env.PARSL_SIDECAR_SSH_CONFIG;
    process.env.PARSL_SIDECAR_SSH_CONFIG = cfg;
    try {
      const lookup = sshConfigLookup();
      const v = byKey(completionPreview(resolveExecutor("cpu", { POOL: "koehr_cpu" }), lookup));
      expect(v.HOST_IP).toMatchObject({
        value: "10.1.2.3",
        note: expect.stringMatching(/HostName .* in ~\/.ssh\/config/),
      });
      expect(v.HOST_USER!.value).toBe("alvaro");
      const other = byKey(
        completionPreview(resolveExecutor("x", { SSH_TARGET: "me@login.example.org" }), lookup),
      );
      expect(other.HOST_IP!.value).toBe("login.example.org");
      expect(other.HOST_USER!.value).toBe("me");
    } finally {
      if (before === undefined) delete process.env.PARSL_SIDECAR_SSH_CONFIG;
      else process.env.PARSL_SIDECAR_SSH_CONFIG = before;
    }
  });
});
