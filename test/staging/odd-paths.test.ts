// Paths with spaces, single and double quotes and `$` on a pool over real SSH (loopback sshd):
// a file and a directory staged to and from such a path, one stream per file and as one tar
// stream, with nothing but the staged names left there (the pool programs get their paths as
// arguments, quoted once on the way).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StagingService } from "../../src/staging/service.js";
import { sshSetup, type SshSetup } from "../ssh/helpers.js";
import { stopAllAfterAll } from "../testbed/hooks.js";

stopAllAfterAll();

const ODD = `a b 'c' "d" $e`;
let setup: SshSetup;
let service: StagingService;
let home: string;
let base: string;

beforeAll(async () => {
  // a private HOME for the sessions (see bed.ts: root's own ~/.bashrc can stall them)
  home = mkdtempSync("/tmp/psc-odd-home-");
  setup = await sshSetup({ sshd: { extraConfig: [`SetEnv HOME=${home}`] } });
  service = new StagingService({ hosts: setup.pool });
  base = mkdtempSync("/tmp/psc-odd-");
}, 60_000);
afterAll(async () => {
  await service?.close();
  await setup?.pool.close();
  rmSync(base, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

/** Every file under `dir`, relative name to text. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(join(d, e.name), r);
      else out[r] = readFileSync(join(d, e.name), "utf8");
    }
  };
  walk(dir, "");
  return out;
}

function seed(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
}

describe("staging with a path holding spaces, quotes and $", { timeout: 60_000 }, () => {
  it("a file to the pool and back", async () => {
    const local = join(base, "local", ODD);
    seed(local, { "one.txt": "one file\n" });
    const pool = join(base, "pool", ODD);
    const up = await service.transfer({
      src: `file://${local}/one.txt`,
      dst: `ssh://pool${pool}/${ODD}.txt`,
      type: "file",
    });
    expect(up).toMatchObject({ files: 1, skipped: 0 });
    expect(readFileSync(join(pool, `${ODD}.txt`), "utf8")).toBe("one file\n");
    const down = await service.transfer({
      src: `ssh://pool${pool}/${ODD}.txt`,
      dst: `file://${base}/back/${ODD}.txt`,
      type: "file",
    });
    expect(down).toMatchObject({ files: 1 });
    expect(readFileSync(join(base, "back", `${ODD}.txt`), "utf8")).toBe("one file\n");
    // the same again: compared by a checksum on the pool, skipped
    const again = await service.transfer({
      src: `file://${local}/one.txt`,
      dst: `ssh://pool${pool}/${ODD}.txt`,
      type: "file",
    });
    expect(again).toMatchObject({ skipped: 1 });
    expect(readdirSync(pool)).toEqual([`${ODD}.txt`]);
  });

  for (const [shape, n, inMethod, outMethod] of [
    ["a few files (one stream each)", 3, "files", "files"],
    ["many small files (one tar stream)", 24, "tar-in", "tar-out"],
  ] as const) {
    it(`a directory of ${shape} to the pool and back`, async () => {
      const files: Record<string, string> = {};
      for (let i = 0; i < n; i++) files[`${i % 2 ? ODD : "plain"}/f ${i}.txt`] = `file ${i}\n`;
      const local = join(base, `tree-${n}`, ODD);
      seed(local, files);
      const pool = join(base, `pool-${n}`, ODD, "dst");
      const up = await service.transfer({
        src: `file://${local}`,
        dst: `ssh://pool${pool}`,
        type: "directory",
      });
      expect(up).toMatchObject({ files: n, method: inMethod });
      expect(tree(pool)).toEqual(files);
      // nothing else beside it (no temporary directory, fifo or hash file left)
      expect(readdirSync(join(pool, ".."))).toEqual(["dst"]);
      const back = join(base, `back-${n}`, ODD);
      const down = await service.transfer({
        src: `ssh://pool${pool}`,
        dst: `file://${back}`,
        type: "directory",
      });
      expect(down).toMatchObject({ files: n, method: outMethod });
      expect(tree(back)).toEqual(files);
      const again = await service.transfer({
        src: `file://${local}`,
        dst: `ssh://pool${pool}`,
        type: "directory",
      });
      expect(again).toMatchObject({ files: 0, skipped: n });
    });
  }
});
