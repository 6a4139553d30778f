// The prompt broker alone: publishing to the client that caused a prompt, answering once, the
// timeout error, answers kept out of logs and messages, and the user's SSH_ASKPASS as OpenSSH
// uses it (a real program: test/fixtures/askpass-answer.sh).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isSidecarError, type SidecarError } from "../../../src/errors.js";
import { EventBus, type SidecarEvent } from "../../../src/events.js";
import { PromptBroker, promptTimeoutMs } from "../../../src/ssh/prompts/broker.js";
import type { Prompt, PromptQuestion } from "../../../src/ssh/prompts/types.js";
import { askpassPolicy } from "../../../src/ssh/prompts/user-askpass.js";
import { createLogger } from "../../../src/util/logger.js";

const ASKPASS = resolve(import.meta.dirname, "../../fixtures/askpass-answer.sh");
const dir = mkdtempSync(join(tmpdir(), "psc-broker-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const question = (over: Partial<PromptQuestion> = {}): PromptQuestion => ({
  target: "hpc",
  host: "alice@login.hpc.example.org:22",
  kind: "code",
  name: "",
  instructions: "",
  prompts: [{ text: "Verification code: ", echo: false }],
  attempt: 1,
  transport: "ssh2",
  ...over,
});

const cause = { client: "00aabbcc", session: "5e55", request: "5e55-7", method: "ssh.exec" };

/** Events of a bus, as they arrive. */
function record(events: EventBus): SidecarEvent[] {
  const got: SidecarEvent[] = [];
  events.on([], (e) => got.push(e));
  return got;
}

async function rejection(p: Promise<unknown>): Promise<SidecarError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isSidecarError(err)) throw new Error(`expected a SidecarError, got ${String(err)}`);
  return err;
}

describe("PromptBroker", () => {
  it("publishes to the client that caused it, answers once, refuses a wrong id", async () => {
    const events = new EventBus();
    const got = record(events);
    const broker = new PromptBroker({ events, timeoutMs: 10_000 });
    const asked = broker.ask(question(), cause);
    const open = got.find((e) => e.topic === "ssh.prompt")!;
    expect(open.to).toBe(cause.client);
    const p = open.data as unknown as Prompt;
    expect(p).toMatchObject({
      target: "hpc",
      kind: "code",
      cause,
      prompts: [{ text: "Verification code: ", echo: false }],
    });
    expect(broker.list().map((x) => x.id)).toEqual([p.id]);
    expect(() => broker.answer("no-such-id", ["1"])).toThrow(/No open prompt `no-such-id`/);
    broker.answer(p.id, ["123456"]);
    expect(await asked).toEqual(["123456"]);
    // answered: no longer open, a second answer is refused
    expect(() => broker.answer(p.id, ["654321"])).toThrow(/No open prompt/);
    expect(broker.list()).toEqual([]);
    expect(got.at(-1)).toMatchObject({
      topic: "ssh.prompt.closed",
      data: { id: p.id, outcome: "answered" },
    });
  });

  it("after the time limit: SSH_AUTH naming the host, the prompt and the ways to answer", async () => {
    const events = new EventBus();
    const got = record(events);
    const broker = new PromptBroker({ events, timeoutMs: 200, env: {} });
    const err = await rejection(broker.ask(question(), cause));
    expect(err.code).toBe("SSH_AUTH");
    expect(err.message).toContain("alice@login.hpc.example.org:22 (target `hpc`)");
    expect(err.message).toContain('"Verification code:"');
    expect(err.message).toContain("no one answered within 200ms");
    // the three ways, and SSH_ASKPASS
    expect(err.message).toMatch(/terminal of the parsl-sidecar command/);
    expect(err.message).toMatch(/parsl_sidecar\.connect\(prompt=\.\.\.\)/);
    expect(err.message).toMatch(/live page/);
    expect(err.message).toMatch(/SSH_ASKPASS.*SSH_ASKPASS is not set/);
    expect(err.message).toMatch(/PARSL_SIDECAR_PROMPT_TIMEOUT/);
    expect(err.data).toMatchObject({ target: "hpc", prompts: ["Verification code: "] });
    expect(got.at(-1)).toMatchObject({ topic: "ssh.prompt.closed", data: { outcome: "timeout" } });
  });

  it("fails at once when no one at all could answer (no bus, no terminal, no askpass)", async () => {
    const broker = new PromptBroker({ timeoutMs: 60_000, env: {} });
    const t0 = Date.now();
    const err = await rejection(broker.ask(question(), undefined));
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(err.code).toBe("SSH_AUTH");
    expect(err.message).toMatch(/there is no one to ask here/);
  });

  it("offers a prompt to an attendant, and withdraws it when the asker gives up", async () => {
    const broker = new PromptBroker({ timeoutMs: 10_000, env: {} });
    const offered: Prompt[] = [];
    let withdrawn = false;
    broker.attend({
      covers: (p) => p.target === "hpc",
      offer: (p, _answer, signal) => {
        offered.push(p);
        signal.addEventListener("abort", () => {
          withdrawn = true;
        });
      },
    });
    const stop = new AbortController();
    const asked = broker.ask(question(), undefined, stop.signal);
    expect(offered).toHaveLength(1);
    stop.abort(new Error("the connection attempt ended"));
    await expect(asked).rejects.toThrow("the connection attempt ended");
    expect(withdrawn).toBe(true);
    // an attendant that does not cover the target is not offered anything, and nobody is there
    await expect(broker.ask(question({ target: "other" }), undefined)).rejects.toThrow(
      /no one to ask here/,
    );
  });

  it("never puts an answer in its log, its events or an error message", async () => {
    const logFile = join(dir, "broker.log");
    const log = createLogger({ file: logFile, fileLevel: "debug" });
    const events = new EventBus();
    const got = record(events);
    const broker = new PromptBroker({ events, log, timeoutMs: 10_000 });
    const secret = "918273";
    const asked = broker.ask(question(), cause);
    const id = broker.list()[0]!.id;
    const messages: string[] = [];
    for (const bad of [Number(secret), secret, [secret, secret], [Number(secret)], { secret }]) {
      try {
        broker.answer(id, bad);
      } catch (err) {
        messages.push((err as Error).message, JSON.stringify((err as SidecarError).data));
      }
    }
    expect(messages).toHaveLength(10);
    expect(messages.join("\n")).toMatch(/values are not shown/);
    broker.answer(id, [secret]);
    expect(await asked).toEqual([secret]);
    log.flush();
    const text = readFileSync(logFile, "utf8");
    expect(text).toMatch(/ssh prompt open/);
    expect(text).toMatch(/ssh prompt answered/);
    expect(text).not.toContain(secret);
    expect(JSON.stringify(got)).not.toContain(secret);
    expect(messages.join("\n")).not.toContain(secret);
  });

  it("reads its time limit from PARSL_SIDECAR_PROMPT_TIMEOUT", () => {
    expect(promptTimeoutMs({})).toBe(90_000);
    expect(promptTimeoutMs({ PARSL_SIDECAR_PROMPT_TIMEOUT: "2m" })).toBe(120_000);
    expect(promptTimeoutMs({ PARSL_SIDECAR_PROMPT_TIMEOUT: "30" })).toBe(30_000);
    expect(() => promptTimeoutMs({ PARSL_SIDECAR_PROMPT_TIMEOUT: "soon" })).toThrow(
      /PARSL_SIDECAR_PROMPT_TIMEOUT/,
    );
  });
});

describe("the user's SSH_ASKPASS, as OpenSSH's readpass.c uses it", () => {
  it("reads SSH_ASKPASS_REQUIRE and the display", () => {
    const p = (env: NodeJS.ProcessEnv) => askpassPolicy(env).use;
    expect(p({})).toBe("never");
    expect(p({ SSH_ASKPASS: ASKPASS })).toBe("never"); // no display
    expect(p({ SSH_ASKPASS: ASKPASS, DISPLAY: ":0" })).toBe("if-unattended");
    expect(p({ SSH_ASKPASS: ASKPASS, WAYLAND_DISPLAY: "wayland-0" })).toBe("if-unattended");
    expect(p({ SSH_ASKPASS: ASKPASS, DISPLAY: "" })).toBe("never");
    expect(p({ SSH_ASKPASS: ASKPASS, SSH_ASKPASS_REQUIRE: "force" })).toBe("now");
    expect(p({ SSH_ASKPASS: ASKPASS, SSH_ASKPASS_REQUIRE: "prefer" })).toBe("never");
    expect(p({ SSH_ASKPASS: ASKPASS, SSH_ASKPASS_REQUIRE: "prefer", DISPLAY: ":0" })).toBe("now");
    expect(p({ SSH_ASKPASS: ASKPASS, SSH_ASKPASS_REQUIRE: "never", DISPLAY: ":0" })).toBe("never");
    // the sidecar's own helper is never taken for the user's
    expect(
      askpassPolicy({ SSH_ASKPASS: "/x/askpass", SSH_ASKPASS_REQUIRE: "force" }, "/x/askpass").use,
    ).toBe("never");
  });

  it("asks the program when no one attends, with ssh's `(user@host) ` in front", async () => {
    const log = join(dir, "askpass-1.log");
    const env = {
      SSH_ASKPASS: ASKPASS,
      DISPLAY: ":0",
      PSC_TEST_ASKPASS_ANSWER: "246810",
      PSC_TEST_ASKPASS_LOG: log,
    };
    const broker = new PromptBroker({ events: new EventBus(), timeoutMs: 10_000, env });
    expect(await broker.ask(question(), undefined)).toEqual(["246810"]);
    expect(readFileSync(log, "utf8")).toBe("(alice@login.hpc.example.org) Verification code: |\n");
  });

  it("does not ask it when the caller attends (a terminal is there), unless forced", async () => {
    const log = join(dir, "askpass-2.log");
    const base = { SSH_ASKPASS: ASKPASS, DISPLAY: ":0", PSC_TEST_ASKPASS_LOG: log };
    const attending = new PromptBroker({
      events: new EventBus(),
      timeoutMs: 300,
      env: base,
      listening: (session) => session === cause.session,
    });
    await expect(attending.ask(question(), cause)).rejects.toThrow(/no one answered/);
    expect(() => readFileSync(log, "utf8")).toThrow(); // never run
    const forced = new PromptBroker({
      events: new EventBus(),
      timeoutMs: 10_000,
      env: { ...base, SSH_ASKPASS_REQUIRE: "force", DISPLAY: "", PSC_TEST_ASKPASS_ANSWER: "1" },
      listening: () => true,
    });
    expect(await forced.ask(question(), cause)).toEqual(["1"]);
    expect(readFileSync(log, "utf8")).toContain("Verification code");
  });

  it("an askpass that gives no answer, with no one else asked, fails at once naming it", async () => {
    const broker = new PromptBroker({
      events: new EventBus(),
      timeoutMs: 60_000,
      env: { SSH_ASKPASS: ASKPASS, SSH_ASKPASS_REQUIRE: "force", PSC_TEST_ASKPASS_EXIT: "1" },
    });
    const t0 = Date.now();
    const err = await rejection(broker.ask(question(), undefined));
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(err.message).toContain(`SSH_ASKPASS program ${ASKPASS} exited with 1`);
    expect(err.message).toContain("askpass-answer.sh: cancelled");
  });

  it("lets a passphrase be asked only when someone can answer", () => {
    const q = question({ kind: "passphrase" });
    expect(new PromptBroker({ env: {} }).canAsk(q, cause)).toBe(false);
    expect(new PromptBroker({ env: {}, listening: () => true }).canAsk(q, cause)).toBe(true);
    expect(
      new PromptBroker({ env: { SSH_ASKPASS: ASKPASS, SSH_ASKPASS_REQUIRE: "force" } }).canAsk(
        q,
        undefined,
      ),
    ).toBe(true);
  });
});
