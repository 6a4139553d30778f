// Why a link could not open, as OpenSSH said it, against a real sshd: an unreachable host, a
// name that does not resolve, a refused key, a one-time code asked after the key, an unknown
// host key (and accept-new only where the user set nothing), a ProxyCommand that exits (and one
// that works), an `ssh` too old or missing, a certificate expired, not yet valid or for another
// principal (the cert node), and a one-time code refused every time or unanswerable (TOTP node).
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OpenSshLink, type OpenSshLinkOptions } from "../../../src/ssh/openssh/openssh-link.js";
import { checkSshVersion, parseSshVersion } from "../../../src/ssh/openssh/version.js";
import { AskpassServer } from "../../../src/ssh/prompts/askpass-server.js";
import { PromptBroker } from "../../../src/ssh/prompts/broker.js";
import { ensurePrivateDir } from "../../../src/util/private-dir.js";
import { startCertNode, type CertNode } from "../../testbed/cert-node.js";
import { stopAllAfterAll, warnSkip } from "../../testbed/hooks.js";
import { startOtpNode, type OtpNode } from "../../testbed/otp-node.js";
import { makeTempDir } from "../../testbed/registry.js";
import { sshdEntry, writeSshConfig } from "../../testbed/ssh-config.js";
import { entryFor } from "../helpers.js";
import { exec, opensshBed, type OpenSshBed } from "./helpers.js";

stopAllAfterAll();

const root = process.getuid?.() === 0;
const whyRoot = "the TOTP node writes a PAM service file in /etc/pam.d, which needs root";
if (!root) warnSkip("a wrong or unanswered one-time code over the openssh link", whyRoot);

/** An openssh link to `target` of `configPath`, in a private runtime dir, closed after the test. */
async function openLink(
  configPath: string,
  target: string,
  o: Partial<OpenSshLinkOptions> = {},
): Promise<OpenSshLink> {
  const link = new OpenSshLink(target, {
    runtimeDir: ensurePrivateDir(join(makeTempDir("openssh-login"), "run")),
    configPath,
    ...o,
  });
  link.on("error", () => undefined);
  try {
    await link.open();
    return link;
  } finally {
    link.close();
  }
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe("opening a link: OpenSSH's reason, named", () => {
  let bed: OpenSshBed;
  let port: number;
  let emptyKnown: string;
  beforeAll(async () => {
    port = await closedPort();
    const dir = makeTempDir("openssh-err");
    emptyKnown = join(dir, "known_hosts");
    writeFileSync(emptyKnown, "");
    bed = await opensshBed({
      sshd: { unauthorizedKey: true },
      entries: (s) => [
        entryFor("closed", s, {}, { port }),
        entryFor("nowhere", s, {}, { hostName: "nowhere.invalid" }),
        entryFor("wrongkey", s, {}, { identityFile: s.unauthorizedKeyPath! }),
        entryFor("strange", s, {}, { userKnownHostsFile: emptyKnown }),
        entryFor("proxyfails", s, {
          ProxyCommand: "sh -c 'echo bastion says no >&2; exit 3'",
        }),
        // its HostName resolves nowhere: only the ProxyCommand reaches it
        entryFor(
          "viaproxy",
          s,
          {
            ProxyCommand: `ssh -F ${join(s.dir, "client_config")} -W 127.0.0.1:${s.port} pool`,
            HostKeyAlias: `[127.0.0.1]:${s.port}`,
          },
          { hostName: "hidden.invalid" },
        ),
      ],
    });
  }, 30000);
  afterAll(() => bed?.stop(), 30000);

  it("nothing listening: SSH_CONNECT naming host, port and why", async () => {
    await expect(bed.open({}, "closed")).rejects.toMatchObject({
      code: "SSH_CONNECT",
      message: expect.stringMatching(
        new RegExp(
          `Cannot connect to 127.0.0.1:${port} \\(target \`closed\`\\): connection refused`,
        ),
      ),
    });
  });

  it("a HostName that does not resolve, and an alias that is nowhere", async () => {
    await expect(bed.open({}, "nowhere")).rejects.toMatchObject({
      code: "SSH_CONNECT",
      message: expect.stringMatching(
        /`nowhere.invalid` \(HostName of `nowhere`\): the host name does not resolve/,
      ),
    });
    await expect(bed.open({}, "no-such-alias.invalid")).rejects.toMatchObject({
      code: "SSH_CONFIG",
      message: expect.stringMatching(/Unknown host `no-such-alias.invalid`/),
    });
  });

  it("a key the server refuses: SSH_AUTH with the methods and the key offered", async () => {
    const err = bed.open({}, "wrongkey");
    await expect(err).rejects.toMatchObject({
      code: "SSH_AUTH",
      message: expect.stringMatching(/refused the login: Permission denied \(publickey\)/),
    });
    await expect(err).rejects.toMatchObject({
      message: expect.stringContaining(`Keys offered: ${bed.sshd.unauthorizedKeyPath}`),
    });
  });

  it("an unknown host key with StrictHostKeyChecking yes: SSH_HOST_KEY with its fingerprint", async () => {
    await expect(bed.open({}, "strange")).rejects.toMatchObject({
      code: "SSH_HOST_KEY",
      message: expect.stringMatching(
        new RegExp(
          `\\[127.0.0.1\\]:${bed.sshd.port}.* is not in known_hosts \\(${emptyKnown}\\).*SHA256:`,
        ),
      ),
    });
  });

  it("a ProxyCommand that exits: named, with its own words", async () => {
    await expect(bed.open({}, "proxyfails")).rejects.toMatchObject({
      code: "SSH_CONNECT",
      message: expect.stringMatching(
        /The ProxyCommand of `proxyfails` \(`sh -c .*`\) ended before the SSH handshake: bastion says no/,
      ),
    });
  });

  it("a ProxyCommand that works: OpenSSH follows it", async () => {
    const link = await bed.open({}, "viaproxy");
    expect((await exec(link, "echo through")).stdout).toBe("through\n");
    expect(link.info().host).toBe("hidden.invalid");
  });
});

describe("host keys: accept-new only where the user set nothing", () => {
  it("unset: the new key is recorded; `ask` set by the user: refused", {
    timeout: 30000,
  }, async () => {
    const dir = makeTempDir("openssh-known");
    const known = join(dir, "known_hosts");
    writeFileSync(known, "");
    const bed = await opensshBed({
      entries: (s) => {
        const unset = entryFor("unset", s, {}, { userKnownHostsFile: known });
        delete (unset.extra as Record<string, unknown>).StrictHostKeyChecking;
        return [
          unset,
          entryFor(
            "asks",
            s,
            { StrictHostKeyChecking: "ask" },
            { userKnownHostsFile: join(dir, "other") },
          ),
        ];
      },
    });
    try {
      const logged: string[] = [];
      const link = await bed.open({ log: (m) => logged.push(m) }, "unset");
      expect(readFileSync(known, "utf8")).toContain(bed.sshd.hostKeyPublic.split(" ")[2]);
      expect(logged.join("\n")).toMatch(/Permanently added/);
      link.close();
      await expect(bed.open({}, "asks")).rejects.toMatchObject({ code: "SSH_HOST_KEY" });
    } finally {
      await bed.stop();
    }
  });
});

/** an sshd that takes the key, then asks a keyboard-interactive question */
const ASKS_A_CODE = {
  extraConfig: [
    "AuthenticationMethods publickey,keyboard-interactive",
    "KbdInteractiveAuthentication yes",
  ],
};

describe("a one-time code after the key (AuthenticationMethods publickey,keyboard-interactive)", () => {
  it("SSH_AUTH says the key was accepted and what the server asks next", {
    timeout: 30000,
  }, async () => {
    const bed = await opensshBed({
      sshd: ASKS_A_CODE,
    });
    try {
      await expect(bed.open()).rejects.toMatchObject({
        code: "SSH_AUTH",
        message: expect.stringMatching(
          /Permission denied \(keyboard-interactive\)\. It accepted publickey and then asks for keyboard-interactive.*one-time code.*ControlMaster/,
        ),
        data: { partial: "publickey", methods: ["keyboard-interactive"] },
      });
    } finally {
      await bed.stop();
    }
  });

  it("BatchMode yes in the user's config: SSH_AUTH says that is why no one was asked", {
    timeout: 30000,
  }, async () => {
    const bed = await opensshBed({
      sshd: ASKS_A_CODE,
      extra: { BatchMode: "yes" },
    });
    try {
      await expect(bed.open({ askpass: { program: "/bin/false" } })).rejects.toMatchObject({
        code: "SSH_AUTH",
        message: expect.stringMatching(
          /no one can be asked here \(your ssh config sets BatchMode yes for this host; without it you are asked\)/,
        ),
      });
    } finally {
      await bed.stop();
    }
  });

  it("an OpenSSH before 8.4 cannot ask: keys still work, and the code's error says why", {
    timeout: 30000,
  }, async () => {
    const dir = makeTempDir("openssh-83");
    const older = join(dir, "ssh");
    writeFileSync(
      older,
      '#!/bin/sh\n[ "$1" = -V ] && { echo "OpenSSH_8.2p1 Ubuntu-4ubuntu0.13, OpenSSL 1.1.1f" >&2; exit 0; }\nexec ssh "$@"\n',
    );
    chmodSync(older, 0o755);
    const askpass = { program: "/bin/false" };
    const plain = await opensshBed();
    const otp = await opensshBed({
      sshd: ASKS_A_CODE,
    });
    try {
      const link = await plain.open({ sshPath: older, askpass });
      expect((await exec(link, "echo ok")).stdout).toBe("ok\n");
      await expect(otp.open({ sshPath: older, askpass })).rejects.toMatchObject({
        code: "SSH_AUTH",
        message: expect.stringMatching(
          /no one can be asked here \(`.*ssh` is OpenSSH 8\.2, which cannot hand a server's questions to the sidecar \(SSH_ASKPASS_REQUIRE came in OpenSSH 8\.4\); update OpenSSH, or use the ssh2 transport/,
        ),
      });
    } finally {
      await plain.stop();
      await otp.stop();
    }
  });
});

describe("the ssh binary", () => {
  it("parses and checks `ssh -V`", () => {
    expect(
      parseSshVersion("OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026"),
    ).toMatchObject({
      major: 9,
      minor: 2,
    });
    expect(() => checkSshVersion("ssh", "OpenSSH_7.4p1, OpenSSL 1.0.2k-fips  26 Jan 2017")).toThrow(
      /OpenSSH 7\.4 .*needs OpenSSH 7\.6 or newer/,
    );
    expect(() => checkSshVersion("ssh", "OpenSSH_for_Windows_8.1p1, LibreSSL 3.0.2")).toThrow(
      /OpenSSH for Windows .* no ControlMaster/,
    );
    expect(() => checkSshVersion("dbclient", "Dropbear v2022.83")).toThrow(/not OpenSSH/);
    expect(checkSshVersion("ssh", "OpenSSH_7.6p1 Ubuntu-4, OpenSSL 1.0.2n").minor).toBe(6);
  });

  it("an ssh too old, or none: SSH_CONFIG before anything is tried", {
    timeout: 30000,
  }, async () => {
    const dir = makeTempDir("openssh-old");
    const old = join(dir, "ssh");
    writeFileSync(
      old,
      "#!/bin/sh\necho 'OpenSSH_7.2p2 Ubuntu-4ubuntu2.10, OpenSSL 1.0.2g' >&2\nexit 255\n",
    );
    chmodSync(old, 0o755);
    const bed = await opensshBed();
    try {
      await expect(bed.open({ sshPath: old })).rejects.toMatchObject({
        code: "SSH_CONFIG",
        message: expect.stringMatching(/is OpenSSH 7\.2 .*needs OpenSSH 7\.6 or newer/),
      });
      await expect(bed.open({ sshPath: join(dir, "missing-ssh") })).rejects.toMatchObject({
        code: "SSH_CONFIG",
        message: expect.stringMatching(
          /needs the OpenSSH client, but no `.*missing-ssh` was found/,
        ),
      });
    } finally {
      await bed.stop();
    }
  });
});

describe("a certificate the server refuses: why, from the certificate", () => {
  let n: CertNode;
  let config: string;
  beforeAll(async () => {
    n = await startCertNode();
    const later = n.certify("later", "+1h:+2h");
    const other = n.certify("other", "-5m:+1h", { principal: "someone-else" });
    const entry = (alias: string, c: { keyPath: string; certPath: string }) =>
      sshdEntry(alias, n.sshd, { identityFile: c.keyPath, certificateFile: c.certPath });
    config = writeSshConfig(
      n.dir,
      [entry("expired", n.expiredKey), entry("later", later), entry("other", other)],
      "more_config",
    );
  }, 30000);
  afterAll(() => n?.stop(), 30000);

  it("expired: SSH_AUTH names the certificate and when it expired", async () => {
    const err = openLink(config, "expired");
    await expect(err).rejects.toMatchObject({
      code: "SSH_AUTH",
      message: expect.stringContaining(
        `The certificate ${n.expiredKey.certPath} expired at 2020-01-02T00:00:00 (valid from 2020-01-01T00:00:00 to 2020-01-02T00:00:00)`,
      ),
      data: { certificates: [{ path: n.expiredKey.certPath }] },
    });
    await expect(err).rejects.toMatchObject({
      message: expect.stringMatching(/refused the login: Permission denied \(publickey\)/),
    });
  });

  it("not valid yet, and for another principal: each said", async () => {
    await expect(openLink(config, "later")).rejects.toMatchObject({
      code: "SSH_AUTH",
      message: expect.stringMatching(/id_later-cert\.pub is not valid yet \(valid from \S+ to/),
    });
    await expect(openLink(config, "other")).rejects.toMatchObject({
      code: "SSH_AUTH",
      message: expect.stringContaining(
        `id_other-cert.pub is for someone-else, not for the user \`${n.sshd.user}\``,
      ),
    });
  });

  it("a valid certificate logs in", async () => {
    const link = await openLink(n.configPath, n.alias);
    expect(link.info().transport).toBe("openssh");
  });
});

describe.skipIf(!root)(
  `a one-time code the server refuses, or no one answers${root ? "" : ` (SKIPPED: ${whyRoot})`}`,
  () => {
    let n: OtpNode;
    beforeAll(async () => {
      n = await startOtpNode();
    }, 30000);
    afterAll(() => n?.stop(), 30000);

    it("every code wrong: SSH_AUTH says how often it asked and that it refused each", {
      timeout: 30000,
    }, async () => {
      const log = join(n.dir, "asked.log");
      const { SSH_ASKPASS: program, ...env } = n.askpassEnv({ wrong: true, log });
      const err = openLink(n.configPath, n.alias, { askpass: { program: program!, env } });
      await expect(err).rejects.toMatchObject({
        code: "SSH_AUTH",
        message: expect.stringMatching(
          /accepted publickey and then asks for keyboard-interactive .*It asked 3 times and refused every answer: a wrong or expired one-time code/,
        ),
        data: { asked: 3, unanswered: [] },
      });
      // the askpass was asked again after each refusal
      expect(readFileSync(log, "utf8").match(/Verification code/g)).toHaveLength(3);
    });

    it("no one can answer: SSH_AUTH gives the prompt's own reason", {
      timeout: 30000,
    }, async () => {
      // no terminal, client or SSH_ASKPASS attends: each question fails at once
      const broker = new PromptBroker({ env: {} });
      const server = await AskpassServer.start(join(makeTempDir("askpass"), "rt"), broker);
      try {
        const reg = server.register({ target: n.alias, host: n.alias });
        const { SSH_ASKPASS, ...env } = reg.env;
        await expect(
          openLink(n.configPath, n.alias, { askpass: { program: SSH_ASKPASS!, env } }),
        ).rejects.toMatchObject({
          code: "SSH_AUTH",
          message: expect.stringMatching(
            /No answer reached the server: .*"Verification code:".*there is no one to ask here/,
          ),
        });
      } finally {
        await server.close();
      }
    });
  },
);
