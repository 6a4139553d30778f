// ssh2 against the TOTP login node (publickey, then a one-time code through PAM), through a real
// daemon: the code is asked of the RPC client whose call caused the connection; a wrong code
// gets the server's answer and a second prompt; nobody answering is SSH_AUTH naming the prompt;
// the old "the server refused key ... authorized_keys" never comes; a reconnect asks again.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SidecarClient } from "../../../src/client/client.js";
import { Daemon } from "../../../src/daemon/daemon.js";
import { isSidecarError, type SidecarError } from "../../../src/errors.js";
import type { SidecarEvent } from "../../../src/events.js";
import { SSH_CONFIG_ENV } from "../../../src/ssh/config.js";
import type { SshModule } from "../../../src/ssh/module.js";
import { PROMPT_TIMEOUT_ENV, PromptBroker } from "../../../src/ssh/prompts/broker.js";
import { SshConnections } from "../../../src/ssh/connections.js";
import type { Prompt } from "../../../src/ssh/prompts/types.js";
import { stopAllAfterAll, warnSkip } from "../../testbed/hooks.js";
import { startOtpNode, type OtpNode } from "../../testbed/otp-node.js";
import { makeTempDir } from "../../testbed/registry.js";
import { sshdEntry, writeSshConfig } from "../../testbed/ssh-config.js";
import { echoServer } from "../../tunnels/helpers.js";
import { endSsh2Link, eventually } from "../helpers.js";

stopAllAfterAll();

const root = process.getuid?.() === 0;
const why = "the TOTP node writes a PAM service file in /etc/pam.d, which needs root";
if (!root) warnSkip("ssh2 keyboard-interactive against the TOTP node", why);

interface Wire {
  exit_code: number | null;
  stdout: string;
}

describe.skipIf(!root)(`ssh2 and the TOTP login node${root ? "" : ` (SKIPPED: ${why})`}`, () => {
  let n: OtpNode;
  let daemon: Daemon;
  let dir: string;
  let next = 0;
  /** a fresh alias of the node (connections are kept warm per target) */
  const alias = (): string => `otp-${next++}`;

  beforeAll(async () => {
    n = await startOtpNode();
    dir = makeTempDir("ssh2-otp");
    const extra = { IdentitiesOnly: "yes", StrictHostKeyChecking: "yes", IdentityAgent: "none" };
    const entries = Array.from({ length: 12 }, (_, i) => sshdEntry(`otp-${i}`, n.sshd, { extra }));
    entries.push(
      sshdEntry("otp-batch", n.sshd, { extra: { ...extra, BatchMode: "yes" } }),
      sshdEntry("otp-two-tries", n.sshd, { extra: { ...extra, NumberOfPasswordPrompts: 2 } }),
      sshdEntry("otp-quick", n.sshd, { extra: { ...extra, ConnectTimeout: 1 } }),
    );
    process.env[SSH_CONFIG_ENV] = writeSshConfig(dir, entries);
    process.env[PROMPT_TIMEOUT_ENV] = "4s";
    daemon = await Daemon.start({
      runtimeDir: join(dir, "run"),
      stateDir: join(dir, "state"),
      stderrLevel: "silent",
    });
    delete process.env[PROMPT_TIMEOUT_ENV];
  }, 30000);
  afterAll(async () => {
    await daemon?.close();
    delete process.env[SSH_CONFIG_ENV];
    // the codes and the made-up secret never reach the sidecar's log
    const log = readFileSync(join(dir, "run", "sidecar.log"), "utf8");
    expect(log).toMatch(/ssh prompt answered/);
    for (const s of secrets) expect(log).not.toContain(s);
    await n?.stop();
  }, 30000);

  /** Everything typed as an answer, to look for in the log at the end. */
  const secrets: string[] = [];
  const code = (): string => {
    const c = n.code();
    secrets.push(`"${c}"`, `=${c}`, ` ${c} `);
    return c;
  };

  /** A client that answers prompts of its own calls with `answer(prompt, nth)`. */
  async function answering(
    answer: (p: Prompt, nth: number) => unknown | Promise<unknown>,
    all = false,
  ): Promise<{ client: SidecarClient; prompts: Prompt[]; events: SidecarEvent[] }> {
    const client = SidecarClient.connect(daemon.connectionFile);
    const prompts: Prompt[] = [];
    const events: SidecarEvent[] = [];
    await client.subscribe(["ssh.prompt"], (e) => {
      events.push(e);
      if (e.topic !== "ssh.prompt") return;
      const p = e.data as unknown as Prompt;
      if (!all && p.cause?.session !== client.session) return;
      prompts.push(p);
      const nth = prompts.length;
      void (async () => {
        const answers = await answer(p, nth);
        await client.call("ssh.prompt.answer", { id: p.id, answers });
      })().catch(() => undefined);
    });
    return { client, prompts, events };
  }

  async function failure(p: Promise<unknown>): Promise<SidecarError> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!isSidecarError(err)) throw new Error(`expected an error, got ${JSON.stringify(err)}`);
    return err;
  }

  it("asks the calling client for the code; the right code connects", {
    timeout: 30000,
  }, async () => {
    const { client, prompts } = await answering(() => [code()]);
    const target = alias();
    const r = await client.call<Wire>("ssh.exec", { target, command: "echo in" });
    expect(r).toMatchObject({ exit_code: 0, stdout: "in\n" });
    expect(prompts).toHaveLength(1);
    expect(prompts[0]).toMatchObject({
      target,
      host: `${n.sshd.user}@${n.sshd.host}:${n.sshd.port}`,
      kind: "code",
      prompts: [{ text: "Verification code: ", echo: false }],
      attempt: 1,
      transport: "ssh2",
      attended: true,
      cause: { session: client.session, method: "ssh.exec" },
    });
    const sshdLog = readFileSync(n.sshd.logPath, "utf8");
    expect(sshdLog).toMatch(/Partial publickey for /);
    expect(sshdLog).toMatch(/Accepted keyboard-interactive\/pam for /);
    client.close();
  });

  it("a wrong code: the server's answer, and a second prompt", { timeout: 30000 }, async () => {
    const wrong = `S3cret-${randomBytes(6).toString("hex")}`;
    secrets.push(wrong);
    let bad: SidecarError | undefined;
    const { client, prompts, events } = await answering(async (p, nth) => {
      if (nth > 1) return [code()];
      // an answer of the wrong shape is refused, and not echoed: the log is read at the end
      bad = await failure(client.call("ssh.prompt.answer", { id: p.id, answers: wrong }));
      return [wrong];
    });
    const exec = client.call<Wire>("ssh.exec", { target: alias(), command: "echo in" });
    expect(await exec).toMatchObject({ exit_code: 0, stdout: "in\n" });
    expect(bad?.code).toBe("INVALID_PARAMS");
    expect(bad?.message).toMatch(/got string \(the values are not shown\)/);
    expect(bad?.message).not.toContain(wrong);
    expect(prompts).toHaveLength(2);
    expect(prompts[1]).toMatchObject({ attempt: 2, kind: "code" });
    expect(prompts[1]!.message).toMatch(
      /did not accept the previous answer to "Verification code:"/,
    );
    expect(events.filter((e) => e.topic === "ssh.prompt.closed")).toHaveLength(2);
    client.close();
  });

  it("nobody answering: SSH_AUTH naming the prompt and the ways, never `refused key`", {
    timeout: 30000,
  }, async () => {
    const client = SidecarClient.connect(daemon.connectionFile);
    const target = alias();
    const t0 = Date.now();
    const err = await failure(client.call("ssh.exec", { target, command: "true" }));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3900);
    expect(err.code).toBe("SSH_AUTH");
    expect(err.message).toContain(`(target \`${target}\`)`);
    expect(err.message).toContain('"Verification code:"');
    expect(err.message).toContain("no one answered within 4s");
    expect(err.message).toMatch(/terminal of the parsl-sidecar command/);
    expect(err.message).toMatch(/prompt=/);
    expect(err.message).toMatch(/live page/);
    expect(err.message).toMatch(/SSH_ASKPASS/);
    expect(err.message).not.toMatch(/refused key|authorized_keys/);
    client.close();
  });

  it("wrong codes until it gives up: the server took the key, then refused the answers", {
    timeout: 30000,
  }, async () => {
    const { client, prompts } = await answering(() => [n.wrongCode()]);
    const err = await failure(
      client.call("ssh.exec", { target: "otp-two-tries", command: "true" }),
    );
    expect(prompts).toHaveLength(2); // NumberOfPasswordPrompts 2
    expect(err.code).toBe("SSH_AUTH");
    expect(err.message).toMatch(
      /the server accepted key .* and then asked for keyboard-interactive; it refused the answer to "Verification code:" 2 times/,
    );
    expect(err.message).not.toMatch(/authorized_keys/);
    expect(err.data).toMatchObject({ refused: 2, server_wants: ["keyboard-interactive"] });
    client.close();
  });

  it("BatchMode yes: says the key was taken and a code is wanted, not `refused key`", async () => {
    const client = SidecarClient.connect(daemon.connectionFile);
    const err = await failure(client.call("ssh.exec", { target: "otp-batch", command: "true" }));
    expect(err.code).toBe("SSH_AUTH");
    expect(err.message).toMatch(
      /the server accepted key .* and then asked for keyboard-interactive; which `BatchMode yes` in the ssh config forbids asking/,
    );
    expect(err.message).not.toMatch(/refused key|authorized_keys/);
    client.close();
  });

  it("a reconnect that needs a new code asks again", { timeout: 40000 }, async () => {
    const { client, prompts } = await answering(() => [code()], true);
    const target = alias();
    expect(await client.call<Wire>("ssh.exec", { target, command: "echo 1" })).toMatchObject({
      stdout: "1\n",
    });
    const conn = (daemon.getModule("ssh") as SshModule).connections.connection(target)!;
    expect(conn.generation).toBe(1);
    endSsh2Link(conn); // the link drops; the connection reconnects and is asked again
    expect(await eventually(() => conn.generation === 2 && conn.state === "ready", 20000)).toBe(
      true,
    );
    expect(prompts).toHaveLength(2);
    // no one called: the reconnect's question has no cause
    expect(prompts[1]).toMatchObject({ target, cause: null, attended: false });
    expect(await client.call<Wire>("ssh.exec", { target, command: "echo 2" })).toMatchObject({
      stdout: "2\n",
    });
    client.close();
  });

  it("a connection the user typed a code for outlives its last lease: the next step is not asked again", {
    timeout: 30000,
  }, async () => {
    const asked: Prompt[] = [];
    const broker = new PromptBroker({ env: {} });
    broker.attend({
      covers: () => true,
      offer: (p, answer) => {
        asked.push(p);
        answer([code()]);
      },
    });
    const pool = new SshConnections({ configPath: process.env[SSH_CONFIG_ENV]!, prompts: broker });
    const target = alias();
    const first = await pool.acquire(target, "step 1");
    first.release();
    expect(pool.list().map((c) => [c.target, c.leases])).toEqual([[target, 0]]);
    const second = await pool.acquire(target, "step 2");
    expect((await second.exec("echo again")).stdout).toBe("again\n");
    expect(asked).toHaveLength(1);
    second.release();
    // lingering and dropped: closed, not reconnected (no one would be there to answer)
    const conn = pool.connection(target)!;
    endSsh2Link(conn);
    expect(await eventually(() => pool.list().length === 0, 5000)).toBe(true);
    expect(conn.state).toBe("closed");
    expect(asked).toHaveLength(1);
    await pool.close();
    // without the linger, each acquire asks
    const eager = new SshConnections({
      configPath: process.env[SSH_CONFIG_ENV]!,
      prompts: broker,
      promptedLingerMs: 0,
    });
    const other = alias();
    (await eager.acquire(other, "a")).release();
    (await eager.acquire(other, "b")).release();
    expect(asked).toHaveLength(3);
    await eager.close();
  });

  it("a tunnel waits (reconnecting, not failed) while the reconnect's question is open", {
    timeout: 60000,
  }, async () => {
    const echo = await echoServer();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { client, prompts } = await answering(async (_p, nth) => {
      if (nth > 1) await gate; // the reconnect's question: answered once the test has looked
      return [code()];
    }, true);
    const target = alias();
    const t = await client.call<{ id: string; state: string }>("tunnels.open", {
      target,
      kind: "reverse",
      local_port: echo.port,
      bind: "loopback",
    });
    expect(t.state).toBe("open");
    const state = async (): Promise<string> =>
      (await client.call<Array<{ id: string; state: string }>>("tunnels.list", {})).find(
        (x) => x.id === t.id,
      )!.state;
    endSsh2Link((daemon.getModule("ssh") as SshModule).connections.connection(target));
    expect(await eventually(() => prompts.length === 2, 20000)).toBe(true);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await state()).toBe("reconnecting");
    release();
    expect(await eventually(async () => (await state()) === "open", 20000)).toBe(true);
    expect(await client.call("tunnels.check", { id: t.id })).toMatchObject({ ok: true });
    await client.call("tunnels.close", { id: t.id });
    await echo.close();
    client.close();
  });

  it("a command waits through a reconnect past waitReadyMs while the user is asked", {
    timeout: 30000,
  }, async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const asked: Prompt[] = [];
    const broker = new PromptBroker({ env: {} });
    broker.attend({
      covers: () => true,
      offer: (p, answer) => {
        asked.push(p);
        void (asked.length === 1 ? Promise.resolve() : gate).then(() => answer([code()]));
      },
    });
    const pool = new SshConnections({
      configPath: process.env[SSH_CONFIG_ENV]!,
      prompts: broker,
      waitReadyMs: 1000,
      reconnect: { initialMs: 50, maxMs: 200 },
    });
    const target = alias();
    const lease = await pool.acquire(target, "t");
    endSsh2Link(pool.connection(target));
    expect(await eventually(() => asked.length === 2, 10000)).toBe(true);
    const exec = lease.exec("echo waited");
    await new Promise((r) => setTimeout(r, 2500)); // well past waitReadyMs
    release();
    expect((await exec).stdout).toBe("waited\n");
    lease.release();
    await pool.close();
  });

  it("the handshake's ConnectTimeout does not count the time the user takes", {
    timeout: 30000,
  }, async () => {
    const broker = new PromptBroker({ env: {} });
    broker.attend({
      covers: () => true,
      offer: (_p, answer) => {
        setTimeout(() => answer([code()]), 2500); // longer than ConnectTimeout 1
      },
    });
    const pool = new SshConnections({ configPath: process.env[SSH_CONFIG_ENV]!, prompts: broker });
    const lease = await pool.acquire("otp-quick", "t");
    expect((await lease.exec("echo slow-typist")).stdout).toBe("slow-typist\n");
    lease.release();
    await pool.close();
  });
});
