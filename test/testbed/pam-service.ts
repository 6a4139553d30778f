// A PAM service of the test bed's own, so the machine's /etc/pam.d/sshd is never edited.
// OpenSSH's sshd uses its program name as its PAM service (auth-pam.h: SSHD_PAM_SERVICE is
// __progname; Debian's 9.2p1 builds it so), so an sshd run as `<dir>/psc-testbed-...` (startSshd's
// `programName`) reads /etc/pam.d/psc-testbed-.... Such a file is removed at stop, at process exit,
// and, after a crash, by the next test bed start once its owner process is gone. A stale one is
// harmless: no other program uses that service name.
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { alive } from "./procs.js";
import { registerExitCleanup, registerStopper } from "./registry.js";

export const PAM_DIR = "/etc/pam.d";
const PREFIX = "psc-testbed-";
const NAME = /^psc-testbed-(\d+)-[0-9a-f]{6}$/;
const HEADER = "# parsl-sidecar test bed (test/testbed/pam-service.ts)";

export interface PamService {
  /** The service name: run sshd under this program name. */
  name: string;
  path: string;
  remove(): void;
}

/** Removes service files of test bed processes that are gone; returns their paths. */
export function sweepStalePamServices(dir = PAM_DIR): string[] {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = NAME.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    const path = join(dir, name);
    try {
      // Only a file this module wrote: its first line is our header.
      if (!readFileSync(path, "utf8").startsWith(HEADER)) continue;
      rmSync(path, { force: true });
      removed.push(path);
    } catch {
      /* raced with another sweep */
    }
  }
  return removed;
}

/**
 * Writes /etc/pam.d/psc-testbed-<pid>-<random> with `lines` (PAM rules) and returns its name.
 * Needs root. Never overwrites a file (exclusive create).
 */
export function installPamService(purpose: string, lines: string[], dir = PAM_DIR): PamService {
  if (dir === PAM_DIR && process.getuid?.() !== 0) {
    throw new Error(
      `${purpose} needs root: it writes a PAM service file in ${PAM_DIR} (sshd's PAM service is its program name)`,
    );
  }
  sweepStalePamServices(dir);
  const name = `${PREFIX}${process.pid}-${randomBytes(3).toString("hex")}`;
  const path = join(dir, name);
  const text = [
    HEADER,
    `# ${purpose}; owner pid ${process.pid}. Safe to delete once that process is gone.`,
    ...lines,
    "",
  ].join("\n");
  writeFileSync(path, text, { mode: 0o644, flag: "wx" });
  const rm = () => rmSync(path, { force: true });
  const unregisterExit = registerExitCleanup(rm);
  const remove = () => {
    unregisterStop();
    unregisterExit();
    rm();
  };
  const unregisterStop = registerStopper(async () => remove());
  return { name, path, remove };
}
