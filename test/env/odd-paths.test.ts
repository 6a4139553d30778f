// Paths with spaces, single and double quotes and `$` on a pool over real SSH (loopback sshd):
// the env probe of a prefix at such a path (given whole, or under `~/`, expanded there), the
// lock beside it (flock and mkdir) and the container probe.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureContainer } from "../../src/env/container.js";
import { acquireLock, lockPathFor } from "../../src/env/lock.js";
import { probe } from "../../src/env/probe.js";
import type { HostLease } from "../../src/ssh/host.js";
import { sshSetup, type SshSetup } from "../ssh/helpers.js";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { VENV_PY } from "./helpers.js";

stopAllAfterAll();

const ODD = `a b 'c' "d" $e`;
let setup: SshSetup;
let host: HostLease;
let home: string;
let base: string;

beforeAll(async () => {
  // the sessions' HOME, where `~/...` expands on the pool
  home = mkdtempSync("/tmp/psc-env-odd-home-");
  setup = await sshSetup({ sshd: { extraConfig: [`SetEnv HOME=${home}`] } });
  host = await setup.pool.acquire("pool", "env-odd");
  base = mkdtempSync("/tmp/psc-env-odd-");
}, 60_000);
afterAll(async () => {
  host?.release();
  await setup?.pool.close();
  rmSync(base, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

/** A venv-shaped prefix whose bin/python runs this repository's interpreter. */
function venvAt(pfx: string): void {
  mkdirSync(join(pfx, "bin"), { recursive: true });
  writeFileSync(join(pfx, "pyvenv.cfg"), "home = /usr\n");
  writeFileSync(join(pfx, "bin", "python"), `#!/bin/sh\nexec '${VENV_PY}' "$@"\n`);
  chmodSync(join(pfx, "bin", "python"), 0o755);
  writeFileSync(join(pfx, ".parsl-sidecar.json"), '{"hash": "h1", "backend": "uv"}\n');
}

describe("env with a path holding spaces, quotes and $", { timeout: 60_000 }, () => {
  it("the probe: a prefix given whole, and one under ~/ expanded on the pool", async () => {
    const pfx = join(base, ODD, "env");
    venvAt(pfx);
    const inp = {
      backend: "uv" as const,
      name: ODD,
      uvBootstrapDir: `~/${ODD}/uv`,
      recordPath: ".parsl-sidecar.json",
    };
    const whole = await probe(host, { ...inp, prefix: pfx });
    expect(whole).toMatchObject({
      home,
      prefix: pfx,
      prefixState: "venv",
      record: { hash: "h1" },
      versions: { python: expect.stringMatching(/^3\./) },
    });
    venvAt(join(home, ODD, "env"));
    const tilde = await probe(host, { ...inp, prefix: `~/${ODD}/env` });
    expect(tilde).toMatchObject({ prefix: join(home, ODD, "env"), prefixState: "venv" });
    // no prefix: the default under HOME, named after the environment
    const def = await probe(host, inp);
    expect(def).toMatchObject({
      prefix: join(home, ".parsl-sidecar/envs", ODD),
      prefixState: "missing",
    });
  });

  for (const mechanism of ["flock", "mkdir"] as const) {
    it(`the lock (${mechanism}) beside such a prefix: taken, then let go`, async () => {
      const lock = lockPathFor(join(base, `lock ${mechanism}`, ODD, "env"));
      const held = await acquireLock(host, lock, { mechanism });
      expect(held.path).toBe(mechanism === "flock" ? lock : `${lock}.d`);
      expect(existsSync(held.path)).toBe(true);
      await held.release();
      if (mechanism === "mkdir") expect(existsSync(held.path)).toBe(false);
      // and taken again at once: nothing was left holding it
      const again = await acquireLock(host, lock, { mechanism, timeoutMs: 10_000 });
      await again.release();
    });
  }

  it("the container probe, for an image at such a path", async () => {
    const path = join(base, "img", `${ODD}.sif`);
    const absent = await ensureContainer(host, { create: false, path });
    expect(absent).toMatchObject({ path, exists: false, action: "skipped" });
    mkdirSync(join(base, "img"), { recursive: true });
    writeFileSync(path, "");
    expect(await ensureContainer(host, { create: false, path })).toMatchObject({ exists: true });
    const tilde = await ensureContainer(host, { create: false, path: `~/${ODD}.sif` });
    expect(tilde.path).toBe(join(home, `${ODD}.sif`));
  });
});
