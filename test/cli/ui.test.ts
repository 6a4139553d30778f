// `parsl-sidecar ui` prints a working link to the running sidecar's page, a new token each time.
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSidecar, type Sidecar } from "../web/helpers.js";

const root = join(import.meta.dirname, "..", "..");
const ui = (args: string[]) => execa(join(root, "node_modules", ".bin", "tsx"), [join(root, "src", "cli", "main.ts"), "ui", ...args], { reject: false, timeout: 60_000 });

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
});
