// scripts/install-system-deps.sh, which npm test runs first: as a user without root it stops
// before any test with one line naming the command; with passwordless sudo it installs through
// `sudo -n`. A package that does not exist stands for a missing one (PARSL_SIDECAR_SYSTEM_PACKAGES),
// and sudo is a stand-in that records what it was asked (no sudo is installed here, and the
// real apt-get must not run); the root path is what CI itself runs.
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { makeTempDir } from "../testbed/registry.js";

const ROOT = resolve(import.meta.dirname, "../..");
const SCRIPT = join(ROOT, "scripts", "install-system-deps.sh");
const asRoot = process.getuid?.() === 0;

/** Run `cmd` as nobody (setpriv), with PATH and the package list given. */
function asNobody(cmd: string[], env: Record<string, string>) {
  return execa(
    "setpriv",
    [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      "--",
      "env",
      "-i",
      ...envArgs(env),
      ...cmd,
    ],
    { reject: false, cwd: "/" },
  );
}

function envArgs(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

describe.skipIf(!asRoot)(
  `install-system-deps.sh as a user${asRoot ? "" : " (SKIPPED: needs root to become nobody)"}`,
  () => {
    const PATH = "/usr/local/bin:/usr/bin:/bin";

    it("missing packages, no sudo: one line naming them and the command, exit 1", async () => {
      const r = await asNobody(["bash", SCRIPT], {
        PATH,
        PARSL_SIDECAR_SYSTEM_PACKAGES: "bash psc-no-such-package",
      });
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toEqual([
        `install-system-deps: the tests need Debian packages that are missing (psc-no-such-package); install them with: sudo bash ${SCRIPT}`,
      ]);
    });

    it("nothing missing: nothing asked of anyone", async () => {
      const r = await asNobody(["bash", SCRIPT], { PATH, PARSL_SIDECAR_SYSTEM_PACKAGES: "bash" });
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain("all 1 packages already installed");
    });

    it("passwordless sudo: apt-get through `sudo -n`, only the missing ones", async () => {
      const dir = makeTempDir("sysdeps");
      chmodSync(dir, 0o755);
      const log = join(dir, "sudo.log");
      writeFileSync(log, "");
      chmodSync(log, 0o666);
      const sudo = join(dir, "sudo");
      writeFileSync(sudo, `#!/bin/sh\necho "$*" >> ${log}\nexit 0\n`);
      chmodSync(sudo, 0o755);
      const r = await asNobody(["bash", SCRIPT], {
        PATH: `${dir}:${PATH}`,
        PARSL_SIDECAR_SYSTEM_PACKAGES: "bash psc-no-such-package",
      });
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain("installing psc-no-such-package (through sudo)");
      const asked = readFileSync(log, "utf8").trim().split("\n");
      expect(asked).toContain("-n true");
      expect(asked).toContain(
        "-n env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends psc-no-such-package",
      );
    });

    it("npm test's script stops before setup or any test when it cannot install", async () => {
      const r = await asNobody(["bash", join(ROOT, "scripts", "test.sh")], {
        PATH,
        PARSL_SIDECAR_SYSTEM_PACKAGES: "psc-no-such-package",
      });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("install them with: sudo bash");
      expect(r.stderr).not.toContain("[setup]");
      expect(r.stderr).not.toContain("[test]");
    });
  },
);
