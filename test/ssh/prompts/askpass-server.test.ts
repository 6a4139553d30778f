// The sidecar's own askpass helper with the real OpenSSH client: `ssh` (SSH_ASKPASS_REQUIRE=
// force, no terminal) runs the helper, which hands the TOTP node's question to the broker over
// the private socket, and prints the answer. Also: an unknown token, a helper run by hand, the
// classification of OpenSSH's prompts, and the helper and socket modes.
import { execFile, spawn } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventBus, type SidecarEvent } from "../../../src/events.js";
import { AskpassServer, classifyOpenSshPrompt } from "../../../src/ssh/prompts/askpass-server.js";
import { PromptBroker } from "../../../src/ssh/prompts/broker.js";
import type { Prompt } from "../../../src/ssh/prompts/types.js";
import { stopAllAfterAll, warnSkip } from "../../testbed/hooks.js";
import { startOtpNode, type OtpNode } from "../../testbed/otp-node.js";
import { makeTempDir } from "../../testbed/registry.js";
import { eventually } from "../helpers.js";

const run = promisify(execFile);
stopAllAfterAll();

const root = process.getuid?.() === 0;
const why = "the TOTP node writes a PAM service file in /etc/pam.d, which needs root";
if (!root) warnSkip("the askpass helper with real ssh against the TOTP node", why);

/** A broker whose one attendant answers with `answer(prompt, nth)` (undefined: not at all). */
function brokerAnswering(
  answer: (p: Prompt, nth: number) => string | undefined,
  timeoutMs = 10_000,
): { broker: PromptBroker; offered: Prompt[]; events: SidecarEvent[] } {
  const events = new EventBus();
  const seen: SidecarEvent[] = [];
  events.on([], (e) => seen.push(e));
  const broker = new PromptBroker({ events, timeoutMs, env: {} });
  const offered: Prompt[] = [];
  broker.attend({
    covers: () => true,
    offer: (p, reply) => {
      offered.push(p);
      const a = answer(p, offered.length);
      if (a !== undefined) reply([a]);
    },
  });
  return { broker, offered, events: seen };
}

describe("the askpass helper", () => {
  it("is a private program and socket, and refuses a token it did not give", async () => {
    const { broker } = brokerAnswering(() => "never");
    const dir = join(makeTempDir("askpass"), "rt");
    const server = await AskpassServer.start(dir, broker);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(server.helperPath).mode & 0o777).toBe(0o700);
    expect(statSync(server.socketPath).mode & 0o777).toBe(0o600);
    const reg = server.register({ target: "hpc", host: "alice@hpc:22" });
    expect(reg.env).toMatchObject({ SSH_ASKPASS: server.helperPath, SSH_ASKPASS_REQUIRE: "force" });
    const forged = { ...reg.env, PARSL_SIDECAR_ASKPASS_TOKEN: "0".repeat(64) };
    const err = await run(server.helperPath, ["Verification code: "], { env: forged }).catch(
      (e: { code: number; stderr: string; stdout: string }) => e,
    );
    expect(err).toMatchObject({ code: 1, stdout: "" });
    expect((err as { stderr: string }).stderr).toMatch(/unknown token/);
    const bare = await run(server.helperPath, ["x"], { env: {} }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((bare as { stderr: string }).stderr).toMatch(/only the sidecar runs this program/);
    await server.close();
  });

  it("prints the broker's answer for a registered ssh, run by hand", async () => {
    const { broker, offered } = brokerAnswering(() => "hunter2");
    const server = await AskpassServer.start(join(makeTempDir("askpass"), "rt"), broker);
    const reg = server.register({
      target: "hpc",
      host: "alice@hpc:22",
      cause: { session: "5e55", request: "5e55-1" },
    });
    const { stdout } = await run(server.helperPath, ["alice@hpc's password: "], { env: reg.env });
    expect(stdout).toBe("hunter2\n");
    expect(offered[0]).toMatchObject({
      target: "hpc",
      kind: "password",
      transport: "openssh",
      cause: { session: "5e55" },
      prompts: [{ text: "alice@hpc's password: ", echo: false }],
    });
    reg.release();
    await expect(
      run(server.helperPath, ["x"], { env: reg.env }).catch((e: { stderr: string }) => {
        throw new Error(e.stderr);
      }),
    ).rejects.toThrow(/unknown token/);
    await server.close();
  });

  it("withdraws the question when the helper goes away (its ssh was killed)", async () => {
    const { broker, offered, events } = brokerAnswering(() => undefined);
    const server = await AskpassServer.start(join(makeTempDir("askpass"), "rt"), broker);
    const reg = server.register({ target: "hpc", host: "alice@hpc:22" });
    const child = spawn(server.helperPath, ["(alice@hpc) Verification code: "], {
      env: reg.env,
      stdio: "ignore",
    });
    expect(await eventually(() => offered.length === 1)).toBe(true);
    expect(broker.list()).toHaveLength(1);
    child.kill("SIGKILL");
    expect(
      await eventually(() =>
        events.some((e) => e.topic === "ssh.prompt.closed" && e.data.outcome === "cancelled"),
      ),
    ).toBe(true);
    expect(broker.list()).toEqual([]);
    await server.close();
  });

  it("tells OpenSSH's questions apart", () => {
    expect(classifyOpenSshPrompt("(alice@hpc) Verification code: ", "")).toEqual({
      kind: "code",
      text: "Verification code: ",
      echo: false,
    });
    expect(classifyOpenSshPrompt("(alice@hpc) Password: ", "").kind).toBe("password");
    expect(classifyOpenSshPrompt("alice@hpc's password: ", "").kind).toBe("password");
    expect(classifyOpenSshPrompt("Enter passphrase for key '/home/a/.ssh/id': ", "").kind).toBe(
      "passphrase",
    );
    const host = classifyOpenSshPrompt(
      "The authenticity of host 'hpc (10.0.0.1)' can't be established.\nED25519 key fingerprint is SHA256:x.\nAre you sure you want to continue connecting (yes/no/[fingerprint])? ",
      "",
    );
    expect(host).toMatchObject({ kind: "host", echo: true });
    expect(classifyOpenSshPrompt("Allow use of key?", "confirm").kind).toBe("host");
  });
});

describe.skipIf(!root)(
  `the askpass helper with real ssh${root ? "" : ` (SKIPPED: ${why})`}`,
  () => {
    let n: OtpNode;
    beforeAll(async () => {
      n = await startOtpNode();
    }, 20000);
    afterAll(async () => await n?.stop(), 20000);

    const ssh = (env: Record<string, string>) =>
      run("ssh", ["-F", n.configPath, n.alias, "echo in-$USER"], {
        timeout: 30000,
        env: { ...process.env, ...env },
      });

    it("answers the TOTP node's code through the broker", { timeout: 30000 }, async () => {
      const { broker, offered } = brokerAnswering(() => n.code());
      const server = await AskpassServer.start(join(makeTempDir("askpass"), "rt"), broker);
      const reg = server.register({ target: n.alias, host: `${n.sshd.user}@${n.alias}` });
      const { stdout } = await ssh(reg.env);
      expect(stdout.trim()).toBe(`in-${n.sshd.user}`);
      expect(offered).toHaveLength(1);
      // ssh's `(user@host) ` is taken off: the server's own text is what is shown
      expect(offered[0]).toMatchObject({
        kind: "code",
        transport: "openssh",
        prompts: [{ text: "Verification code: ", echo: false }],
      });
      reg.release();
      await server.close();
    });

    it("a wrong code: ssh asks again, as the second attempt", { timeout: 30000 }, async () => {
      const { broker, offered } = brokerAnswering((_p, nth) =>
        nth === 1 ? n.wrongCode() : n.code(),
      );
      const server = await AskpassServer.start(join(makeTempDir("askpass"), "rt"), broker);
      const reg = server.register({ target: n.alias, host: n.alias });
      const { stdout } = await ssh(reg.env);
      expect(stdout.trim()).toBe(`in-${n.sshd.user}`);
      expect(offered.map((p) => p.attempt)).toEqual([1, 2]);
      expect(offered[1]!.message).toMatch(/did not accept the previous answer/);
      await server.close();
    });

    it("nobody answering: the helper says why and ssh gives up", { timeout: 30000 }, async () => {
      const { broker, events } = brokerAnswering(() => undefined, 1500);
      const server = await AskpassServer.start(join(makeTempDir("askpass"), "rt"), broker);
      const reg = server.register({ target: n.alias, host: n.alias });
      const err = await ssh({ ...reg.env }).catch((e: { stderr: string }) => e);
      const stderr = (err as { stderr: string }).stderr;
      expect(stderr).toMatch(/parsl-sidecar askpass: .*no one answered within 1.5s/);
      expect(stderr).toMatch(/Permission denied/);
      expect(
        events.some((e) => e.topic === "ssh.prompt.closed" && e.data.outcome === "timeout"),
      ).toBe(true);
      await server.close();
    });
  },
);
