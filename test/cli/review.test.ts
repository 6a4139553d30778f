// `run --review` and `executors edit` through the real CLI: the link is printed, Accept lets the
// command run, Cancel stops with exit code 4 before the command starts.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { sshdEntry, writeSshConfig } from "../testbed/ssh-config.js";
import { startSshd } from "../testbed/sshd.js";
import { cookieFor, TWO_POOLS, twoPools } from "../web/helpers.js";

const root = join(import.meta.dirname, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "psc-cli-review-"));
const children: ChildProcess[] = [];
stopAllAfterAll();
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

function cli(
  args: string[],
  extraEnv: Record<string, string> = {},
): { child: ChildProcess; url: Promise<string>; exit: Promise<number>; out: () => string } {
  const child = spawn(
    join(root, "node_modules", ".bin", "tsx"),
    [join(root, "src", "cli", "entry.ts"), ...args],
    {
      cwd: dir,
      env: {
        ...process.env,
        PARSL_SIDECAR_RUNTIME_DIR: join(dir, "rt"),
        PARSL_SIDECAR_STATE_DIR: join(dir, "state"),
        ...extraEnv,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  children.push(child);
  let text = "";
  const url = new Promise<string>((resolve) => {
    const onData = (b: Buffer): void => {
      text += b.toString();
      const m = /http:\/\/127\.0\.0\.1:\d+\/\?\S+/.exec(text);
      if (m) resolve(m[0]);
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
  });
  const exit = new Promise<number>((r) =>
    child.on("exit", (code, sig) => r(code ?? 128 + (sig === "SIGKILL" ? 9 : 15))),
  );
  return { child, url, exit, out: () => text };
}

async function decide(
  url: string,
  action: "accept" | "cancel",
  edit: (doc: Record<string, Record<string, unknown>>) => void = () => undefined,
): Promise<number> {
  const origin = new URL(url).origin;
  const id = new URL(url).searchParams.get("review")!;
  const cookie = await cookieFor(url);
  const snap = (await (
    await fetch(`${origin}/api/reviews/${id}`, { headers: { cookie } })
  ).json()) as { doc: Record<string, Record<string, unknown>>; hash: string };
  edit(snap.doc);
  const res = await fetch(`${origin}/api/reviews/${id}/${action}`, {
    method: "POST",
    headers: { cookie, origin, "content-type": "application/json" },
    body: JSON.stringify({ doc: snap.doc, hash: snap.hash }),
  });
  return res.status;
}

describe("run --review", { timeout: 60_000 }, () => {
  it("Cancel on the page: exit code 4 and the command never starts", async () => {
    const file = join(dir, "executors.json");
    writeFileSync(file, TWO_POOLS);
    const run = cli([
      "run",
      "--review",
      "--executors",
      file,
      "--",
      "sh",
      "-c",
      `touch ${join(dir, "ran")}`,
    ]);
    expect(await decide(await run.url, "cancel")).toBe(200);
    expect(await run.exit).toBe(4);
    expect(existsSync(join(dir, "ran"))).toBe(false);
    expect(run.out()).toMatch(/cancelled/);
  });

  it("Accept on the page: the file is written and the command runs", async () => {
    const file = join(dir, "executors2.json");
    writeFileSync(file, TWO_POOLS.replaceAll("    ", "\t"));
    // --no-complete: the two pools of the fixture do not exist, so the file is only reviewed
    const run = cli([
      "run",
      "--review",
      "--no-complete",
      "--executors",
      file,
      "--",
      "sh",
      "-c",
      "exit 7",
    ]);
    expect(await decide(await run.url, "accept")).toBe(200);
    expect(await run.exit).toBe(7);
    expect(readFileSync(file, "utf8")).toBe(TWO_POOLS.replaceAll("    ", "\t"));
  });
});

describe("run --review with real pools", { timeout: 120_000 }, () => {
  it("the edits accepted on the page are what completion gets: COMMAND sees them in the completed executors", async () => {
    const sshd = await startSshd();
    const sshConfig = writeSshConfig(sshd.dir, [
      sshdEntry("koehr_cpu", sshd),
      sshdEntry("google_gpu", sshd),
    ]);
    const file = join(dir, "pools.json");
    writeFileSync(file, twoPools(join(sshd.dir, "pool")));
    const out = join(dir, "completed.json");
    const run = cli(
      [
        "run",
        "--review",
        "--executors",
        file,
        "--",
        "sh",
        "-c",
        `cat "$PARSL_SIDECAR_EXECUTORS" > ${out}`,
      ],
      { PARSL_SIDECAR_SSH_CONFIG: sshConfig },
    );
    expect(
      await decide(await run.url, "accept", (doc) => (doc.cpu_executor!.CORES_PER_WORKER = 2)),
    ).toBe(200);
    expect(await run.exit, run.out()).toBe(0);
    const completed = JSON.parse(readFileSync(out, "utf8")) as Record<
      string,
      Record<string, unknown>
    >;
    expect(completed.cpu_executor).toMatchObject({
      CORES_PER_WORKER: 2,
      MY_TEAM_NOTE: "ask Alvaro before changing",
      HOST_IP: "127.0.0.1",
      DIAL_ADDRESS: "127.0.0.1",
    });
    expect(completed.cpu_executor!.WORKER_PORT).toEqual(expect.any(Number));
    expect(completed.gpu_executor!.TUNNEL_ID).toEqual(expect.any(String));
    // the user's file holds the accepted edits, not the completion (that is the run's own copy)
    const onDisk = JSON.parse(readFileSync(file, "utf8")) as Record<
      string,
      Record<string, unknown>
    >;
    expect(onDisk.cpu_executor!.CORES_PER_WORKER).toBe(2);
    expect(onDisk.cpu_executor!.HOST_IP).toBeUndefined();
  });
});

describe("executors edit", { timeout: 60_000 }, () => {
  it("prints the link, exits 0 once accepted and 4 when cancelled", async () => {
    const file = join(dir, "edit.json");
    writeFileSync(file, TWO_POOLS);
    const a = cli(["executors", "edit", file]);
    expect(await decide(await a.url, "accept")).toBe(200);
    expect(await a.exit).toBe(0);
    const c = cli(["executors", "edit", file]);
    expect(await decide(await c.url, "cancel")).toBe(200);
    expect(await c.exit).toBe(4);
  });
});
