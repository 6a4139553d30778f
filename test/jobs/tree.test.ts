import { spawn, type ChildProcess } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { readProc, selfStartTime } from "../../src/jobs/proc.js";
import { collectJobProcesses } from "../../src/jobs/tree.js";

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

/** A process that left every group (its own session) and only carries the job's marker. */
function marked(jobId: string): ChildProcess {
  const c = spawn("sleep", ["60"], {
    detached: true,
    stdio: "ignore",
    env: { ...process.env, PARSL_SIDECAR_JOB: jobId },
  });
  children.push(c);
  return c;
}

describe("collectJobProcesses", () => {
  it("finds a process by its environment marker alone", () => {
    const c = marked("tree-marker");
    const found = collectJobProcesses({ jobId: "tree-marker", pgids: [], known: [], exclude: [] });
    expect(found.map((p) => p.pid)).toEqual([c.pid]);
  });

  it("reads no environment of processes older than notBefore, and still of the newer ones", () => {
    const c = marked("tree-not-before");
    const start = readProc(c.pid!)!.startTime;
    expect(start).toBeGreaterThanOrEqual(selfStartTime());
    expect(
      collectJobProcesses({
        jobId: "tree-not-before",
        pgids: [],
        known: [],
        exclude: [],
        notBefore: start,
      }).map((p) => p.pid),
    ).toEqual([c.pid]);
    // a bound after its start: the marker is not looked for, so the process is not found
    expect(
      collectJobProcesses({
        jobId: "tree-not-before",
        pgids: [],
        known: [],
        exclude: [],
        notBefore: start + 1,
      }),
    ).toEqual([]);
  });

  it("reads a process's stat line: this process, its parent, and nothing for a pid that does not exist", () => {
    const self = readProc("self")!;
    expect(self.pid).toBe(process.pid);
    expect(self.ppid).toBe(process.ppid);
    expect(self.startTime).toBe(selfStartTime());
    expect(readProc(2 ** 22 + 1)).toBeUndefined();
  });
});
