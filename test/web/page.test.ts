// The page in a real browser (Debian's chromium driven by playwright-core) against a real
// sidecar: the review form, validation as typed with the CLI's messages, Accept, Cancel, a file
// that does not parse, a file changed on disk, two browsers accepting at once, the token, and
// the live view. Screenshots of each state go to test-artifacts/web/.
import { readFileSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkExecutors } from "../../src/executors/index.js";
import type { JobsModule } from "../../src/jobs/methods.js";
import { alive, jobProcesses } from "../jobs/helpers.js";
import { stopAllAfterAll, warnSkip } from "../testbed/hooks.js";
import { sshdEntry, writeSshConfig } from "../testbed/ssh-config.js";
import { startSshd, type Sshd } from "../testbed/sshd.js";
import {
  haveChromium,
  launchChromium,
  openReview,
  shot,
  startSidecar,
  twoPools,
  type Sidecar,
} from "./helpers.js";

stopAllAfterAll();
/** the workflow's Python here (with Parsl); the first pool uses it too, the second the system python3 */
const VENV_PYTHON = join(import.meta.dirname, "..", "..", ".venv", "bin", "python");
let POOLS = "";
const skip = haveChromium
  ? false
  : warnSkip(
      "web page browser tests",
      "/usr/bin/chromium is not installed (bash scripts/install-system-deps.sh installs it)",
    );

/** Open a link in a fresh browser context (its own cookies: another "browser") and wait until ready. */
async function openPage(browser: Browser, url: string): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on(
    "console",
    (m) => m.type() === "error" && !m.text().includes("403") && errors.push(m.text()),
  );
  (page as Page & { errors: string[] }).errors = errors;
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]");
  return page;
}

/** A full-page picture: the viewport grows to the page so sticky bars sit where they belong. */
async function picture(page: Page, name: string): Promise<void> {
  const height = await page.locator("html").evaluate((el) => el.scrollHeight);
  await page.setViewportSize({ width: 1280, height: Math.max(600, Math.min(height, 4000)) });
  await page.screenshot({ path: shot(name) });
  await page.setViewportSize({ width: 1280, height: 900 });
}

describe.skipIf(skip)("web page in chromium", { timeout: 60_000 }, () => {
  let s: Sidecar;
  let browser: Browser;
  let sshd: Sshd;
  beforeAll(async () => {
    // the pool `koehr_cpu` is a real sshd, reached through an ssh config as users have it
    sshd = await startSshd();
    process.env.PARSL_SIDECAR_SSH_CONFIG = writeSshConfig(sshd.dir, [
      sshdEntry("koehr_cpu", sshd),
      sshdEntry("google_gpu", sshd),
    ]);
    process.env.PARSL_SIDECAR_PYTHON = VENV_PYTHON;
    POOLS = twoPools(join(sshd.dir, "pool"), VENV_PYTHON);
    s = await startSidecar();
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await s?.close();
    delete process.env.PARSL_SIDECAR_SSH_CONFIG;
    delete process.env.PARSL_SIDECAR_PYTHON;
  });

  it("shows a form per executor, validates as typed with the CLI's message, and Accept writes the file keeping order and unknown keys", async () => {
    const file = s.write("two-pools.json", POOLS);
    const r = await openReview(s, file);
    const waiting = s.client.call<{ outcome: string }>(
      "web.review_wait",
      { id: r.id },
      { timeout: 0 },
    );
    const page = await openPage(browser, r.url);
    expect(new URL(page.url()).searchParams.get("token")).toBeNull();
    await expect.poll(() => page.locator(".card[data-label]").count()).toBe(2);
    await expect.poll(() => page.locator("#file-path").textContent()).toBe(file);
    // the explanation of a key sits beside it
    expect(
      await page
        .locator('.card[data-label="cpu_executor"] .field[data-key="CORES_PER_WORKER"] .help')
        .textContent(),
    ).toMatch(/Cores each worker uses/);
    // an unknown key is shown, marked, and warned about, but does not block
    await expect
      .poll(() => page.locator("#err-cpu_executor-MY_TEAM_NOTE").textContent())
      .toMatch(/Unknown key/);
    await expect.poll(() => page.locator("#accept").isEnabled()).toBe(true);
    // what completion fills in is shown per label: the host from the ssh config, ports picked at start
    await expect
      .poll(() => page.locator("#extras-cpu_executor .kv").textContent())
      .toMatch(/HOST_IP127\.0\.0\.1 HostName of koehr_cpu in ~\/\.ssh\/config/);
    await expect
      .poll(() => page.locator("#extras-gpu_executor .kv").textContent())
      .toMatch(/WORKER_PORTa free port on the head node's loopback/);
    // the preflight reached each pool: green where the versions match, red where they do not,
    // the tunnel pending (it opens at completion, after Accept)
    const check = (label: string, name: string) =>
      page.locator(`#extras-${label} [data-check="${name}"]`);
    await expect
      .poll(() => check("cpu_executor", "versions").getAttribute("class"), { timeout: 30_000 })
      .toBe("check ok");
    expect(await check("cpu_executor", "reachable").getAttribute("class")).toBe("check ok");
    expect(await check("cpu_executor", "directories").getAttribute("class")).toBe("check ok");
    expect(await check("cpu_executor", "tunnel").getAttribute("class")).toBe("check pending");
    await expect
      .poll(() => check("gpu_executor", "versions").getAttribute("class"))
      .toBe("check bad");
    expect(await check("gpu_executor", "versions").textContent()).toMatch(
      /Parsl is not importable/,
    );
    await picture(page, "review-form");

    await page.fill("#f-cpu_executor-CORES_PER_WORKER", "abc");
    const cli = checkExecutors({
      ...JSON.parse(POOLS),
      cpu_executor: { ...JSON.parse(POOLS).cpu_executor, CORES_PER_WORKER: "abc" },
    });
    const expected = cli.errors.find((e) => e.key === "CORES_PER_WORKER")!.message;
    await expect
      .poll(() => page.locator("#err-cpu_executor-CORES_PER_WORKER").textContent())
      .toBe(expected.replaceAll("`", ""));
    expect(await page.locator("#accept").isDisabled()).toBe(true);
    expect(await page.locator("#problem-count").textContent()).toMatch(/1 problem/);
    await picture(page, "review-invalid");

    await page.fill("#f-cpu_executor-CORES_PER_WORKER", "2");
    await expect
      .poll(() => page.locator("#err-cpu_executor-CORES_PER_WORKER").textContent())
      .toBe("");
    await expect.poll(() => page.locator("#accept").isEnabled()).toBe(true);
    await page.fill("#f-gpu_executor-RUN_DIR", "/scratch/me/run");
    await expect.poll(() => page.locator("#accept").isEnabled()).toBe(true);
    await page.click("#accept");
    await expect.poll(() => page.locator("#banner").textContent()).toMatch(/Accepted/);
    await picture(page, "review-accepted");
    expect((await waiting).outcome).toBe("accepted");

    const text = readFileSync(file, "utf8");
    const original = JSON.parse(POOLS);
    const written = JSON.parse(text);
    expect(Object.keys(written)).toEqual(Object.keys(original));
    expect(Object.keys(written.cpu_executor)).toEqual(Object.keys(original.cpu_executor));
    expect(written.cpu_executor).toEqual({ ...original.cpu_executor, CORES_PER_WORKER: 2 });
    expect(written.gpu_executor).toEqual({ ...original.gpu_executor, RUN_DIR: "/scratch/me/run" });
    expect(text.split("\n")[1]).toBe('    "cpu_executor": {');
    expect((page as Page & { errors: string[] }).errors).toEqual([]);
    await page.context().close();
  });

  it("Cancel: the page says so and the wait ends with cancelled", async () => {
    const file = s.write("cancel.json", POOLS);
    const r = await openReview(s, file);
    const waiting = s.client.call<{ outcome: string }>(
      "web.review_wait",
      { id: r.id },
      { timeout: 0 },
    );
    const page = await openPage(browser, r.url);
    await page.click("#cancel");
    await expect.poll(() => page.locator("#banner").textContent()).toMatch(/Cancelled/);
    expect((await waiting).outcome).toBe("cancelled");
    expect(await page.locator("#accept").isDisabled()).toBe(true);
    await picture(page, "review-cancelled");
    expect(readFileSync(file, "utf8")).toBe(POOLS);
    await page.context().close();
  });

  it("a file that does not parse: the page shows where (line and column) and offers Reload", async () => {
    const bad = POOLS.replace('"CONDA_ENV": "parsl_py39",', '"CONDA_ENV": "parsl_py39"');
    const file = s.write("broken.json", bad);
    const r = await openReview(s, file);
    const page = await openPage(browser, r.url);
    await expect
      .poll(() => page.locator("#parse-error .parse-msg").textContent())
      .toMatch(/at line 5, column 9/);
    expect(await page.locator("#parse-error .src-bad").textContent()).toMatch(/CONDA_DIR/);
    expect(await page.locator("#accept").isDisabled()).toBe(true);
    await picture(page, "review-parse-error");
    // fixed in an editor, then Reload: the form appears
    writeFileSync(file, POOLS);
    await page.click("#reload");
    await expect.poll(() => page.locator(".card[data-label]").count()).toBe(2);
    await page.context().close();
  });

  it("a file changed on disk while open: the page says so and does not overwrite", async () => {
    const file = s.write("changed.json", POOLS);
    const r = await openReview(s, file);
    const page = await openPage(browser, r.url);
    await page.fill("#f-gpu_executor-CORES_PER_WORKER", "6");
    const theirs = POOLS.replace('"POOL": "google_gpu"', '"POOL": "google_gpu_v2"');
    writeFileSync(file, theirs);
    await expect.poll(() => page.locator("#accept").isEnabled()).toBe(true);
    await page.click("#accept");
    await expect
      .poll(() => page.locator("#banner").textContent())
      .toMatch(/changed on disk since this page loaded it/);
    await picture(page, "review-changed-on-disk");
    expect(readFileSync(file, "utf8")).toBe(theirs);
    await page.context().close();
  });

  it("two browsers accept at once: one wins, the other is told", async () => {
    const file = s.write("race.json", POOLS);
    const r = await openReview(s, file);
    const second = await s.client.call<{ url: string }>("web.open", { review: r.id });
    const [a, b] = await Promise.all([openPage(browser, r.url), openPage(browser, second.url)]);
    await a.fill("#f-cpu_executor-CORES_PER_WORKER", "3");
    await b.fill("#f-cpu_executor-CORES_PER_WORKER", "5");
    await expect.poll(() => a.locator("#accept").isEnabled()).toBe(true);
    await expect.poll(() => b.locator("#accept").isEnabled()).toBe(true);
    // both press Accept in the same moment; whichever is second is refused (409) or, if the
    // first one's event arrived before its click, already shows that the other window accepted
    const press = (p: Page): Promise<void> =>
      p.locator("#accept").evaluate((el) => (el as unknown as { click(): void }).click());
    await Promise.all([press(a), press(b)]);
    const texts = async (): Promise<string[]> => [
      (await a.locator("#banner").textContent()) ?? "",
      (await b.locator("#banner").textContent()) ?? "",
    ];
    await expect.poll(async () => (await texts()).every((t) => t !== "")).toBe(true);
    const [ta, tb] = await texts();
    const winners = [ta, tb].filter((t) => /^Accepted/.test(t!));
    const losers = [ta, tb].filter((t) => /already accepted|accepted in another window/.test(t!));
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    const cores = JSON.parse(readFileSync(file, "utf8")).cpu_executor.CORES_PER_WORKER;
    expect(cores).toBe(/^Accepted/.test(ta!) ? 3 : 5);
    await picture(/^Accepted/.test(ta!) ? a : b, "two-browsers-winner");
    await picture(/^Accepted/.test(ta!) ? b : a, "two-browsers-told");
    await a.context().close();
    await b.context().close();
  });

  it("refuses the page, the API and the event stream without the token", async () => {
    const { url } = await s.client.call<{ url: string }>("web.open", {});
    const origin = new URL(url).origin;
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 400 } });
    const page = await ctx.newPage();
    const res = await page.goto(`${origin}/`);
    expect(res!.status()).toBe(403);
    expect(await page.textContent("body")).toMatch(/Forbidden/);
    await page.screenshot({ path: shot("forbidden") });
    for (const path of ["/api/state", "/api/events", "/api/live", "/assets/app.js"]) {
      expect((await ctx.request.get(`${origin}${path}`)).status(), path).toBe(403);
    }
    // the same link works once, and the cookie it sets opens the API
    expect((await page.goto(url))!.status()).toBe(200);
    expect((await ctx.request.get(`${origin}/api/state`)).status()).toBe(200);
    const cookies = await ctx.cookies();
    expect(cookies[0]).toMatchObject({ httpOnly: true, sameSite: "Strict" });
    // the link is spent: a new browser cannot use it
    const other = await browser.newContext();
    expect((await (await other.newPage()).goto(url))!.status()).toBe(403);
    await other.close();
    await ctx.close();
  });

  it("the live view shows the sidecar's log lines, a real tunnel's bytes and transfers as they happen", async () => {
    const { url } = await s.client.call<{ url: string }>("web.open", {});
    const page = await openPage(browser, url);
    await expect.poll(() => page.locator("#tab-live").getAttribute("aria-selected")).toBe("true");
    // a real SSH connection to the pool: the Pools panel and the log follow it
    const ran = await s.client.call<{ exit_code: number }>("ssh.exec", {
      target: "koehr_cpu",
      command: "true",
    });
    expect(ran.exit_code).toBe(0);
    await expect
      .poll(() => page.locator('#connections tr[data-target="koehr_cpu"]').textContent())
      .toMatch(new RegExp(`${sshd.user}@127\\.0\\.0\\.1:${sshd.port}.*ready`));
    await expect.poll(() => page.locator("#logs").textContent()).toMatch(/ssh koehr_cpu: ready/);
    // a real tunnel through the pool's sshd to an echo server; traffic through it shows as bytes and in the chart
    const echo: Server = createServer((sock) => sock.pipe(sock));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", () => r()));
    const echoPort = (echo.address() as { port: number }).port;
    const t = await s.client.call<{ id: string; local_port: number }>("tunnels.open", {
      target: "koehr_cpu",
      kind: "local",
      remote_host: "127.0.0.1",
      remote_port: echoPort,
      owner: "web-test",
    });
    await expect
      .poll(() => page.locator(`tr[data-tunnel="${t.id}"]`).textContent())
      .toMatch(/open/);
    const sock = connect(t.local_port, "127.0.0.1");
    let echoed = 0;
    sock.on("data", (b) => (echoed += b.length));
    const chunk = Buffer.alloc(256 * 1024, 7);
    // keep traffic flowing across a few one-second samples
    const cookieCtx = page.context();
    const sampled = async (): Promise<boolean> => {
      const live = (await (
        await cookieCtx.request.get(new URL("/api/live", page.url()).toString())
      ).json()) as { samples: Array<{ tunnel_in: number; tunnel_out: number }> };
      return live.samples.some((x) => x.tunnel_in > 0 && x.tunnel_out > 0);
    };
    const pump = setInterval(() => sock.write(chunk), 50);
    try {
      await expect.poll(sampled, { timeout: 30_000 }).toBe(true);
    } finally {
      clearInterval(pump);
    }
    await expect.poll(() => echoed).toBeGreaterThan(0);
    await expect
      .poll(() => page.locator(`tr[data-tunnel="${t.id}"] td.num`).first().textContent())
      .toMatch(/MiB|KiB/);
    sock.destroy();
    // real transfers by the staging service: one to the pool, one whose source does not exist
    const src = join(s.dir, "inputs.bin");
    writeFileSync(src, Buffer.alloc(24 * 1024 * 1024, 3));
    const done = await s.client.call<{ id: string; bytes: number }>(
      "staging.transfer",
      {
        src: `file://${src}`,
        dst: `ssh://koehr_cpu${join(sshd.dir, "pool", "inputs.bin")}`,
        item: "inputs",
      },
      { timeout: 60_000 },
    );
    expect(done.bytes).toBe(24 * 1024 * 1024);
    await expect
      .poll(() => page.locator(`[data-transfer="${done.id}"]`).textContent())
      .toMatch(/done.*24\.0 MiB of 24\.0 MiB \(100%\)/);
    await expect(
      s.client.call("staging.transfer", {
        src: `file://${join(s.dir, "missing.bin")}`,
        dst: `ssh://google_gpu${join(sshd.dir, "pool", "missing.bin")}`,
        item: "model",
      }),
    ).rejects.toMatchObject({ code: "STAGING_NOT_FOUND" });
    await expect
      .poll(() => page.locator(".transfer", { hasText: "missing.bin" }).textContent())
      .toMatch(/failed.*STAGING_NOT_FOUND/);
    await expect.poll(() => page.locator("canvas#chart-transfers").isVisible()).toBe(true);
    await picture(page, "live");
    await s.client.call("tunnels.close", { id: t.id });
    await new Promise<void>((r) => echo.close(() => r()));
    await page.context().close();
  });

  it("Stop on a running job kills it the way `parsl-sidecar kill` does: the job and its children are gone", async () => {
    const jobs = (s.daemon.getModule("jobs") as JobsModule).service;
    const id = "web-stop-test";
    const runner = jobs.start({
      id,
      command: ["sh", "-c", "sleep 300 & sleep 301; wait"],
      cwd: s.dir,
      env: { ...process.env },
      graceMs: 2000,
      sidecar: { pid: process.pid, connection_file: s.daemon.connectionFile },
    });
    const { url } = await s.client.call<{ url: string }>("web.open", {});
    const page = await openPage(browser, url);
    const row = page.locator(`tr[data-job="${id}"]`);
    await expect
      .poll(() => row.textContent())
      .toMatch(/running.*sh -c 'sleep 300 & sleep 301; wait'/);
    const running = await s.client.call<{ pgid: number; tracked: Array<{ pid: number }> }>(
      "jobs.get",
      { job: id },
    );
    await expect.poll(() => page.locator("#jobs").textContent()).toMatch(/Stop/);
    await picture(page, "live-job-running");
    await row.locator("button", { hasText: "Stop" }).click();
    const out = await runner.done;
    expect(out.record.state).toBe("killed");
    await expect.poll(() => row.textContent()).toMatch(/killed/);
    expect(await row.locator("button").count()).toBe(0);
    await picture(page, "live-job-stopped");
    const after = await s.client.call<{ tracked: Array<{ pid: number }> }>("jobs.get", { job: id });
    const pids = [
      running.pgid,
      ...running.tracked.map((p) => p.pid),
      ...after.tracked.map((p) => p.pid),
    ];
    expect(pids.filter(alive)).toEqual([]);
    // nothing carrying the job's marker or in its group is left anywhere on this machine
    expect(jobProcesses(id, [running.pgid])).toEqual([]);
    await page.context().close();
  });
});
