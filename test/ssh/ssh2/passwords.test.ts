// The other questions ssh2 asks through the broker: an encrypted key's passphrase (when the
// environment variable is not set and someone can be asked) and a password where a site uses
// them (sshd `AuthenticationMethods password` with a PAM stack of its own that checks one
// made-up password with pam_exec; root).
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isSidecarError, type SidecarError } from "../../../src/errors.js";
import { SshConnections } from "../../../src/ssh/connections.js";
import { PromptBroker } from "../../../src/ssh/prompts/broker.js";
import type { Prompt } from "../../../src/ssh/prompts/types.js";
import { stopAllAfterAll, warnSkip } from "../../testbed/hooks.js";
import { installPamService, type PamService } from "../../testbed/pam-service.js";
import { makeTempDir } from "../../testbed/registry.js";
import { sshdEntry, writeSshConfig } from "../../testbed/ssh-config.js";
import { startSshd, type Sshd } from "../../testbed/sshd.js";

stopAllAfterAll();

async function failure(p: Promise<unknown>): Promise<SidecarError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isSidecarError(err)) throw new Error(`expected an error, got ${String(err)}`);
  return err;
}

/** A broker whose one attendant answers with `answer(prompt, nth)`. */
function answering(answer: (p: Prompt, nth: number) => string): {
  broker: PromptBroker;
  asked: Prompt[];
} {
  const asked: Prompt[] = [];
  const broker = new PromptBroker({ env: {} });
  broker.attend({
    covers: () => true,
    offer: (p, reply) => {
      asked.push(p);
      reply([answer(p, asked.length)]);
    },
  });
  return { broker, asked };
}

describe("an encrypted key without $PARSL_SIDECAR_KEY_PASSPHRASE", () => {
  let sshd: Sshd;
  let configPath: string;
  beforeAll(async () => {
    sshd = await startSshd({ encryptedKey: true });
    configPath = writeSshConfig(makeTempDir("passphrase"), [
      sshdEntry("locked", sshd, {
        identityFile: sshd.encryptedKeyPath!,
        extra: { IdentitiesOnly: "yes", IdentityAgent: "none", StrictHostKeyChecking: "yes" },
      }),
    ]);
    delete process.env.PARSL_SIDECAR_KEY_PASSPHRASE;
  }, 20000);
  afterAll(async () => await sshd?.stop(), 20000);

  it("asks for the passphrase, once more after a wrong one, and logs in", {
    timeout: 30000,
  }, async () => {
    const { broker, asked } = answering((_p, nth) =>
      nth === 1 ? "not-the-passphrase" : sshd.encryptedKeyPassphrase!,
    );
    const pool = new SshConnections({ configPath, prompts: broker });
    const lease = await pool.acquire("locked", "t");
    expect((await lease.exec("echo unlocked")).stdout).toBe("unlocked\n");
    lease.release();
    await pool.close();
    expect(asked.map((p) => [p.kind, p.attempt])).toEqual([
      ["passphrase", 1],
      ["passphrase", 2],
    ]);
    expect(asked[0]!.prompts).toEqual([
      { text: `Enter passphrase for key '${sshd.encryptedKeyPath}': `, echo: false },
    ]);
    expect(asked[1]!.message).toMatch(/did not decrypt the key/);
  });

  it("with no one to ask, says the key is encrypted and the variable is not set", async () => {
    const pool = new SshConnections({ configPath, prompts: new PromptBroker({ env: {} }) });
    const err = await failure(pool.acquire("locked", "t"));
    await pool.close();
    expect(err.code).toBe("SSH_AUTH");
    expect(err.message).toContain(
      `identity file ${sshd.encryptedKeyPath} is encrypted and $PARSL_SIDECAR_KEY_PASSPHRASE is not set`,
    );
  });
});

const root = process.getuid?.() === 0;
const why = "the password node writes a PAM service file in /etc/pam.d, which needs root";
if (!root) warnSkip("ssh2 passwords", why);

describe.skipIf(!root)(`a site that uses passwords${root ? "" : ` (SKIPPED: ${why})`}`, () => {
  const PASSWORD = "correct horse battery staple";
  let sshd: Sshd;
  let pam: PamService;
  let configPath: string;
  beforeAll(async () => {
    const dir = makeTempDir("password-node");
    // pam_exec hands the typed password to this program on stdin (expose_authtok)
    const check = join(dir, "check-password.sh");
    writeFileSync(check, `#!/bin/sh\nIFS= read -r typed || true\n[ "$typed" = '${PASSWORD}' ]\n`);
    chmodSync(check, 0o755);
    pam = installPamService("password login node", [
      `auth required pam_exec.so expose_authtok quiet ${check}`,
      "account required pam_permit.so",
      "session required pam_permit.so",
      "password required pam_deny.so",
    ]);
    sshd = await startSshd({
      programName: pam.name,
      extraConfig: [
        "UsePAM yes",
        "PasswordAuthentication yes",
        "KbdInteractiveAuthentication no",
        "AuthenticationMethods password",
        "PermitRootLogin yes",
      ],
    });
    configPath = writeSshConfig(dir, [
      sshdEntry("pw", sshd, {
        extra: { IdentitiesOnly: "yes", IdentityAgent: "none", StrictHostKeyChecking: "yes" },
      }),
    ]);
  }, 20000);
  afterAll(async () => {
    await sshd?.stop();
    pam?.remove();
  }, 20000);

  it("asks for the password, again after a wrong one, and logs in", {
    timeout: 30000,
  }, async () => {
    const { broker, asked } = answering((_p, nth) => (nth === 1 ? "wrong" : PASSWORD));
    const pool = new SshConnections({ configPath, prompts: broker });
    const lease = await pool.acquire("pw", "t");
    expect((await lease.exec("echo by-password")).stdout).toBe("by-password\n");
    lease.release();
    await pool.close();
    expect(asked.map((p) => [p.kind, p.attempt])).toEqual([
      ["password", 1],
      ["password", 2],
    ]);
    expect(asked[0]!.prompts[0]!.text).toBe(`${sshd.user}@${sshd.host}'s password: `);
    expect(asked[1]!.message).toMatch(/refused the password/);
  });

  it("wrong every time: SSH_AUTH says the password was refused, not authorized_keys", {
    timeout: 30000,
  }, async () => {
    const { broker, asked } = answering(() => "wrong");
    const pool = new SshConnections({ configPath, prompts: broker });
    const err = await failure(pool.acquire("pw", "t"));
    await pool.close();
    expect(asked).toHaveLength(3);
    expect(err.message).toMatch(/it refused the answer to a password 3 times/);
    expect(err.message).not.toMatch(/authorized_keys/);
  });
});
