// `parsl-sidecar ui` prints a working link to the running sidecar's page, a new token each time.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSidecar, type Sidecar } from "../web/helpers.js";

const root = join(import.meta.dirname, "..", "..");
const home = mkdtempSync(join(tmpdir(), "psc-ui-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));
const env = {
  PARSL_SIDECAR_RUNTIME_DIR: join(home, "rt"),
  PARSL_SIDECAR_STATE_DIR: join(home, "state"),
};
const cli = (args: string[]) =>
  execa(
    join(root, "node_modules", ".bin", "tsx"),
    [join(root, "src", "cli", "entry.ts"), ...args],
    { reject: false, timeout: 60_000, env },
  );
const ui = (args: string[]) => cli(["ui", ...args]);

describe("parsl-sidecar ui", { timeout: 60_000 }, () => {
  let s: Sidecar;
  beforeAll(async () => {
    s = await startSidecar();
  });
  afterAll(async () => await s?.close());

  it("prints a link with a one-time token that opens the page", async () => {
    const a = await ui(["--connection", s.daemon.connectionFile]);
    expect(a.exitCode, a.stderr).toBe(0);
    const url = a.stdout.trim();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{32}$/);
    expect((await fetch(url)).status).toBe(200);
    expect((await fetch(url)).status).toBe(403);
    const b = await ui(["--connection", s.daemon.connectionFile, "--json"]);
    const { url: second } = JSON.parse(b.stdout) as { url: string };
    expect(second).not.toBe(url);
    expect(new URL(second).port).toBe(new URL(url).port);
  });

  it("exits 3 when no sidecar runs", async () => {
    const r = await ui(["--connection", join(s.dir, "nope.json")]);
    expect(r.exitCode).toBe(3);
  });

  it("`run --ui` prints the live page's link; `ui --job` finds the sidecar of a running job", async () => {
    const run = cli(["run", "--ui", "--job", "web-ui-job", "--", "sleep", "60"]);
    let err = "";
    const link = await new Promise<string>((resolve) => {
      run.stderr!.on("data", (b: Buffer) => {
        err += b.toString();
        const m = /live page .*: (http:\/\/127\.0\.0\.1:\d+\/\?token=\S+)/.exec(err);
        if (m) resolve(m[1]!);
      });
    });
    expect((await fetch(link)).status).toBe(200);
    const byJob = await ui(["--job", "web-ui-job"]);
    expect(byJob.exitCode, byJob.stderr).toBe(0);
    expect(new URL(byJob.stdout.trim()).port).toBe(new URL(link).port);
    expect((await fetch(byJob.stdout.trim())).status).toBe(200);
    expect((await cli(["kill", "web-ui-job"])).exitCode).toBe(0);
    await run;
    const ended = await ui(["--job", "web-ui-job"]);
    expect(ended.exitCode).toBe(12);
    expect(ended.stderr).toMatch(/has ended \(killed\)/);
    const unknown = await ui(["--job", "no-such-job"]);
    expect(unknown.exitCode).toBe(10);
    expect(unknown.stderr).toMatch(/No job `no-such-job`/);
  });
});
