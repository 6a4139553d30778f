// The live page answers what a login node asks: a call from a client that does not answer
// prompts connects to the TOTP node; the page (real chromium) shows the question as a form, the
// code typed there logs in, and the form goes away. The answer route refuses a closed prompt.
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SidecarClient } from "../../src/client/client.js";
import { Daemon } from "../../src/daemon/daemon.js";
import { SSH_CONFIG_ENV } from "../../src/ssh/config.js";
import { PROMPT_TIMEOUT_ENV } from "../../src/ssh/prompts/broker.js";
import { stopAllAfterAll, warnSkip } from "../testbed/hooks.js";
import { startOtpNode, type OtpNode } from "../testbed/otp-node.js";
import { makeTempDir } from "../testbed/registry.js";
import { sshdEntry, writeSshConfig } from "../testbed/ssh-config.js";
import { haveChromium, launchChromium, shot } from "./helpers.js";

stopAllAfterAll();
const root = process.getuid?.() === 0;
const why = !haveChromium
  ? "/usr/bin/chromium is not installed (bash scripts/install-system-deps.sh installs it)"
  : "the TOTP node writes a PAM service file in /etc/pam.d, which needs root";
const skip = !haveChromium || !root;
if (skip) warnSkip("answering a prompt on the live page", why);

describe.skipIf(skip)(`the live page answers a prompt${skip ? ` (SKIPPED: ${why})` : ""}`, () => {
  let n: OtpNode;
  let daemon: Daemon;
  let browser: Browser;
  beforeAll(async () => {
    n = await startOtpNode();
    const dir = makeTempDir("web-prompts");
    process.env[SSH_CONFIG_ENV] = writeSshConfig(dir, [
      sshdEntry("otp-page", n.sshd, {
        extra: { IdentitiesOnly: "yes", StrictHostKeyChecking: "yes", IdentityAgent: "none" },
      }),
    ]);
    process.env[PROMPT_TIMEOUT_ENV] = "40s";
    daemon = await Daemon.start({
      runtimeDir: join(dir, "run"),
      stateDir: join(dir, "state"),
      stderrLevel: "silent",
    });
    delete process.env[PROMPT_TIMEOUT_ENV];
    browser = await launchChromium();
  }, 60000);
  afterAll(async () => {
    await browser?.close();
    await daemon?.close();
    delete process.env[SSH_CONFIG_ENV];
    await n?.stop();
  }, 30000);

  it("shows the question, sends the typed code, and the call connects", {
    timeout: 60000,
  }, async () => {
    const client = SidecarClient.connect(daemon.connectionFile);
    const { url } = await client.call<{ url: string }>("web.open", {});
    const page = await (await browser.newContext()).newPage();
    await page.goto(url);
    await page.waitForSelector("body[data-ready=true]");
    // this client does not answer prompts: the page is where it is answered
    const exec = client.call<{ stdout: string }>(
      "ssh.exec",
      { target: "otp-page", command: "echo from-page" },
      { timeout: 0 },
    );
    const form = page.locator("form.prompt");
    await form.waitFor({ timeout: 20000 });
    expect(await form.textContent()).toContain("(target otp-page) asks:");
    expect(await form.textContent()).toContain("Verification code:");
    const input = form.locator("input");
    expect(await input.getAttribute("type")).toBe("password");
    await page.screenshot({ path: shot("prompt-open") });
    await input.fill(n.code());
    await form.locator("button").click();
    expect((await exec).stdout).toBe("from-page\n");
    await form.waitFor({ state: "detached", timeout: 10000 });
    // the prompt is closed: answering it again is refused
    const status = await page.evaluate(async () => {
      const r = await fetch("/api/prompts/0011223344556677/answer", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ answers: ["1"] }),
      });
      return { status: r.status, body: (await r.json()) as { error: { message: string } } };
    });
    expect(status.status).toBeGreaterThanOrEqual(400);
    expect(status.body.error.message).toMatch(/No open prompt/);
    client.close();
  });
});
