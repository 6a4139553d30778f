// The sidecar's Node flags are written once, in the bin's shebang (src/cli/launcher.ts), and
// every way of starting it runs Node with them: the shebang itself, and `node FILE` starts that
// read them (src/cli/node-flags.ts) such as `serve --detach`.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { nodeFlags } from "../../src/cli/node-flags.js";

const MAIN = resolve(import.meta.dirname, "../../dist/bin/parsl-sidecar.js");
const FLAGS = ["--max-semi-space-size=8"];
const dir = mkdtempSync(join(tmpdir(), "psc-node-flags-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cmdline = (pid: number): string[] =>
  readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);

function script(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe("nodeFlags", () => {
  it("reads the built bin's shebang", () => {
    expect(readFileSync(MAIN, "utf8").split("\n", 1)[0]).toBe(
      `#!/usr/bin/env -S node ${FLAGS.join(" ")}`,
    );
    expect(nodeFlags(MAIN)).toEqual(FLAGS);
  });

  it("finds none in a plain shebang, a foreign one, no shebang or no file", () => {
    expect(nodeFlags(script("plain.js", "#!/usr/bin/env node\n1;\n"))).toEqual([]);
    expect(nodeFlags(script("python.js", "#!/usr/bin/env -S python3 -u\n"))).toEqual([]);
    expect(nodeFlags(script("none.js", "// --max-semi-space-size=8\n"))).toEqual([]);
    expect(nodeFlags(join(dir, "missing.js"))).toEqual([]);
    expect(nodeFlags(script("two.js", "#!/bin/env -S node --a=1 --b\n"))).toEqual(["--a=1", "--b"]);
  });
});

describe("the sidecar runs with them however it starts", () => {
  const env = {
    PARSL_SIDECAR_RUNTIME_DIR: join(dir, "rt"),
    PARSL_SIDECAR_STATE_DIR: join(dir, "state"),
    PARSL_SIDECAR_CONNECTION_FILE: "",
    PARSL_SIDECAR_JOB: "",
  };

  it("through the shebang, as an installed bin runs: `run` hosts the sidecar in that Node", async () => {
    const r = await execa(
      MAIN,
      ["run", "-q", "--", "sh", "-c", 'tr "\\0" "\\n" < /proc/$PPID/cmdline'],
      { env, reject: false },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const argv = r.stdout.split("\n");
    expect(argv.slice(1, 1 + FLAGS.length)).toEqual(FLAGS);
    expect(argv).toContain("run");
  });

  it("`serve --detach` started by `node FILE` gives the detached sidecar the flags", async () => {
    const up = await execa(process.execPath, [MAIN, "serve", "--detach"], { env, reject: false });
    expect(up.exitCode, up.stderr).toBe(0);
    try {
      const info = JSON.parse(readFileSync(up.stdout.trim(), "utf8")) as { pid: number };
      const argv = cmdline(info.pid);
      expect(argv.slice(1, 1 + FLAGS.length)).toEqual(FLAGS);
      expect(argv.slice(1 + FLAGS.length, 3 + FLAGS.length)).toEqual([MAIN, "serve"]);
    } finally {
      await execa(process.execPath, [MAIN, "stop"], { env, reject: false });
    }
  });
});
