import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAllAfterAll, warnSkip } from "./hooks.js";
import { leftoverProcesses } from "./leftovers.js";
import { canUseNamespaces, createTopology, type Topology } from "./netns.js";
import { startSlurm, type Slurm } from "./slurm.js";

stopAllAfterAll();
const support = await canUseNamespaces();
if (!support.ok) warnSkip("Slurm inside network namespaces", support.reason);

async function squeueIds(s: Slurm): Promise<string[]> {
  const { stdout } = await s.run(["squeue", "-h", "-o", "%i"]);
  return stdout.split("\n").filter(Boolean);
}

describe("startSlurm on the host", () => {
  let s: Slurm;
  beforeAll(async () => {
    s = await startSlurm();
  }, 40000);
  afterAll(async () => {
    const dir = s?.dir;
    await s?.stop();
    if (dir) expect(leftoverProcesses(dir)).toEqual([]);
  }, 30000);

  it("sbatch --wait runs a job that writes a file; squeue is empty after", {
    timeout: 40000,
  }, async () => {
    const out = join(s.dir, "job.out");
    const { stdout } = await s.run([
      "sbatch",
      "--wait",
      "-o",
      out,
      "--wrap",
      "echo job $SLURM_JOB_ID on $SLURMD_NODENAME",
    ]);
    const id = /Submitted batch job (\d+)/.exec(stdout)?.[1];
    expect(readFileSync(out, "utf8").trim()).toBe(`job ${id} on ${s.nodeName}`);
    expect(await squeueIds(s)).toEqual([]);
  });

  it("sbatch --wait passes the job's exit code through", { timeout: 40000 }, async () => {
    await expect(
      s.run(["sbatch", "--wait", "-o", "/dev/null", "--wrap", "exit 3"]),
    ).rejects.toMatchObject({ code: 3 });
  });

  it("scancel stops a running job", { timeout: 40000 }, async () => {
    const { stdout } = await s.run([
      "sbatch",
      "--parsable",
      "-o",
      "/dev/null",
      "--wrap",
      "sleep 300",
    ]);
    const id = stdout.trim().split(";")[0]!;
    for (
      let i = 0;
      i < 100 && !(await s.run(["squeue", "-h", "-j", id, "-o", "%T"])).stdout.includes("RUNNING");
      i++
    ) {
      await sleep(100);
    }
    await s.run(["scancel", id]);
    for (let i = 0; i < 100 && (await squeueIds(s)).length > 0; i++) await sleep(100);
    expect(await squeueIds(s)).toEqual([]);
    await s.waitIdle(20000);
  });
});

describe.skipIf(!support.ok)(
  `Slurm across namespaces${support.ok ? "" : ` (SKIPPED: ${support.reason})`}`,
  () => {
    let t: Topology;
    let s: Slurm;
    let hostServer: Server;
    let hostPort = 0;
    beforeAll(async () => {
      t = await createTopology();
      s = await startSlurm({
        controller: { netns: t.head.ns, addr: t.head.computeSideAddr },
        node: { netns: t.compute.ns, addr: t.compute.addr },
      });
      hostServer = createServer((c) => c.end());
      await new Promise<void>((r) => hostServer.listen(0, "0.0.0.0", r));
      hostPort = (hostServer.address() as { port: number }).port;
    }, 40000);
    afterAll(async () => {
      hostServer?.close();
      const dir = s?.dir;
      await s?.stop();
      await t?.destroy();
      if (dir) expect(leftoverProcesses(dir)).toEqual([]);
    }, 30000);

    it("jobs run in the compute namespace and cannot reach the default namespace", {
      timeout: 40000,
    }, async () => {
      const out = join(s.dir, "probe.out");
      const probe = `import socket
for host in ("${t.hostAddr}", "${t.head.computeSideAddr}"):
    try:
        socket.create_connection((host, ${hostPort} if host == "${t.hostAddr}" else ${s.ctldPort}), timeout=2).close(); print(host, "ok")
    except OSError as e:
        print(host, "fail")`;
      await s.run(["sbatch", "--wait", "-o", out, "--wrap", `python3 -c '${probe}'`]);
      expect(readFileSync(out, "utf8").trim().split("\n")).toEqual([
        `${t.hostAddr} fail`,
        `${t.head.computeSideAddr} ok`,
      ]);
    });
  },
);
