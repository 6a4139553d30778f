import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "./cli-client.js";
import { stopAllAfterAll, warnSkip } from "./hooks.js";
import { leftoverProcesses } from "./leftovers.js";
import { startOtpNode, type OtpNode } from "./otp-node.js";
import { PAM_DIR, sweepStalePamServices } from "./pam-service.js";

const run = promisify(execFile);
stopAllAfterAll();

const SSHD_PAM = join(PAM_DIR, "sshd");
const digest = (p: string) =>
  existsSync(p) ? createHash("sha256").update(readFileSync(p)).digest("hex") : "absent";
const ours = () => readdirSync(PAM_DIR).filter((f) => f.startsWith(`psc-testbed-${process.pid}-`));

const root = process.getuid?.() === 0;
const why = "the TOTP node writes a PAM service file in /etc/pam.d, which needs root";
if (!root) warnSkip("TOTP login node tests", why);

describe.skipIf(!root)(`TOTP login node${root ? "" : ` (SKIPPED: ${why})`}`, () => {
  let n: OtpNode;
  let sshdPamBefore: string;
  const ssh = (env: Record<string, string>, extra: string[] = []) =>
    run("ssh", ["-F", n.configPath, ...extra, n.alias, "echo in-$USER"], {
      timeout: 20000,
      env: { ...process.env, ...env },
    });

  beforeAll(async () => {
    sshdPamBefore = digest(SSHD_PAM);
    const t0 = Date.now();
    n = await startOtpNode();
    console.log(`otp node up in ${Date.now() - t0} ms`);
  }, 20000);
  afterAll(async () => {
    const dirs = [n?.dir, n?.sshd.dir];
    await n?.stop();
    for (const d of dirs) if (d) expect(leftoverProcesses(d)).toEqual([]);
    expect(ours()).toEqual([]);
    // The machine's own sshd PAM stack is never touched.
    expect(digest(SSHD_PAM)).toBe(sshdPamBefore);
  }, 20000);

  it("runs sshd under its own PAM service, not /etc/pam.d/sshd", () => {
    expect(ours()).toEqual([n.pamService]);
    expect(readFileSync(join(PAM_DIR, n.pamService), "utf8")).toContain(
      `pam_google_authenticator.so secret=${n.secretPath} `,
    );
    expect(readFileSync(n.sshd.configPath, "utf8")).toMatch(
      /AuthenticationMethods publickey,keyboard-interactive/,
    );
  });

  it("gives six-digit codes, and a wrong one that differs", () => {
    const [code, wrong] = [n.code(), n.wrongCode()];
    expect(code).toMatch(/^\d{6}$/);
    expect(wrong).toMatch(/^\d{6}$/);
    expect(wrong).not.toBe(code);
  });

  it("lets `ssh -F CONFIG HOST` in after the key and the code typed via askpass", async () => {
    const log = join(n.dir, "askpass-ok.log");
    const { stdout } = await ssh(n.askpassEnv({ log }));
    expect(stdout.trim()).toBe(`in-${n.sshd.user}`);
    // Asked once, by our PAM service (the machine's sshd stack would have asked "Password:").
    expect(readFileSync(log, "utf8")).toMatch(/^\(.*\) Verification code: \n$/);
    const sshdLog = readFileSync(n.sshd.logPath, "utf8");
    expect(sshdLog).toMatch(/Partial publickey for /);
    expect(sshdLog).toMatch(/Accepted keyboard-interactive\/pam for /);
  });

  it("refuses a wrong code", async () => {
    const log = join(n.dir, "askpass-wrong.log");
    await expect(ssh(n.askpassEnv({ wrong: true, log }))).rejects.toThrow(
      /Permission denied \(keyboard-interactive\)/,
    );
    expect(readFileSync(log, "utf8")).toContain("Verification code");
    expect(readFileSync(n.sshd.logPath, "utf8")).toMatch(/Failed keyboard-interactive\/pam for /);
  });

  it("refuses the key alone when no code can be typed", async () => {
    await expect(ssh({}, ["-o", "BatchMode=yes"])).rejects.toThrow(
      /Permission denied \(keyboard-interactive\)/,
    );
  });
});

describe("PAM service files", () => {
  it("a stale file of a dead process is swept; others' files are kept", () => {
    const dir = mkdtempSync(join(tmpdir(), "psc-pam-"));
    const header = "# parsl-sidecar test bed (test/testbed/pam-service.ts)\n";
    writeFileSync(join(dir, "psc-testbed-999999999-abcdef"), `${header}auth required x\n`);
    writeFileSync(join(dir, `psc-testbed-${process.pid}-abcdef`), `${header}auth required x\n`);
    writeFileSync(join(dir, "psc-testbed-999999998-abcdef"), "not ours\n");
    writeFileSync(join(dir, "sshd"), "@include common-auth\n");
    expect(sweepStalePamServices(dir)).toEqual([join(dir, "psc-testbed-999999999-abcdef")]);
    expect(readdirSync(dir).sort()).toEqual(
      ["psc-testbed-999999998-abcdef", `psc-testbed-${process.pid}-abcdef`, "sshd"].sort(),
    );
  });

  it.skipIf(!root)(
    "after a crash (SIGKILL), the next start removes the leftover",
    {
      timeout: 30000,
    },
    async () => {
      const before = digest(SSHD_PAM);
      const script =
        `import { installPamService } from ${JSON.stringify(join(REPO_ROOT, "test/testbed/pam-service.ts"))};` +
        `console.log(installPamService("crash test", ["auth required pam_deny.so"]).path);` +
        "setInterval(() => {}, 1000);";
      // node itself (not the tsx wrapper, which runs node as a child): the process that is killed
      // is the one whose PID names the file.
      const child = spawn(
        process.execPath,
        ["--import", "tsx", "--input-type=module", "-e", script],
        {
          cwd: REPO_ROOT,
          stdio: "pipe",
        },
      );
      const [path] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
      expect(existsSync(path)).toBe(true);
      expect(sweepStalePamServices()).toContain(path);
      expect(existsSync(path)).toBe(false);
      expect(digest(SSHD_PAM)).toBe(before);
    },
  );
});
