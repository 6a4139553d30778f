/**
 * `npm run bench -- env [--quick]`: the first and the second `parsl-sidecar env ensure` (uv
 * backend, Parsl from a local wheelhouse, unchanged requirements) here and on a loopback pool
 * (the test bed's sshd), as a user runs them: the compiled CLI, wall time. Peer, same run: what
 * a script without the hash check does every time — `uv venv` (existing) + `uv pip install -r`
 * here, and the same through OpenSSH's `ssh` to the pool.
 * Last line: {"bench":"env","first_local_s","second_local_s","first_pool_s","second_pool_s",
 * "peer_second_local_s","peer_second_pool_s","goal","met",...}; also the same unchanged ensure as a
 * library call (`library_second_local_s`) and `node -e 0` (`node_startup_s`), to show the load.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { startSshd } from "../test/testbed/sshd.js";
import { stopAll } from "../test/testbed/registry.js";
import { wheelhouse } from "../test/env/helpers.js";
import { ensureEnv } from "../src/env/ensure.js";
import { LocalHost } from "../src/ssh/local-host.js";

const quick = process.argv.includes("--quick");
const reps = quick ? 2 : 9;
const repo = resolve(import.meta.dirname, "..");
// the installed executable (package.json bin)
const main = join(repo, "dist", "bin", "parsl-sidecar.js");
const uv = join(repo, ".venv", "bin", "uv");
const log = (msg: string): void => void process.stderr.write(`[bench env] ${msg}\n`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (s: number): number => Math.round(s * 1000) / 1000;

const tmp = mkdtempSync(join(tmpdir(), "psc-bench-env-"));
const wheels = wheelhouse();
const parsl = execFileSync(
  join(repo, ".venv/bin/python"),
  ["-c", "import importlib.metadata as m; print(m.version('parsl'))"],
  { encoding: "utf8" },
).trim();
const reqs = join(tmp, "requirements.txt");
writeFileSync(reqs, `parsl==${parsl}\n`);

const sshd = await startSshd();
const sshConfig = join(tmp, "ssh_config");
writeFileSync(
  sshConfig,
  `Host benchpool\n  HostName ${sshd.host}\n  Port ${sshd.port}\n  User ${sshd.user}\n  IdentityFile ${sshd.keyPath}\n  UserKnownHostsFile ${sshd.knownHostsPath}\n  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n  IdentityAgent none\n`,
  { mode: 0o600 },
);
const env = {
  ...process.env,
  PARSL_SIDECAR_SSH_CONFIG: sshConfig,
  PARSL_SIDECAR_CONNECTION_FILE: "",
};

async function ensure(target: string, prefix: string): Promise<{ s: number; action: string }> {
  const t0 = performance.now();
  const r = await execa(
    process.execPath,
    [
      main,
      "env",
      "ensure",
      "--target",
      target,
      "--file",
      reqs,
      "--prefix",
      prefix,
      "--uv",
      uv,
      "--find-links",
      wheels,
      "--no-index",
      "--json",
      "--quiet",
    ],
    { env, reject: false, timeout: 600_000 },
  );
  const s = (performance.now() - t0) / 1000;
  if (r.exitCode !== 0)
    throw new Error(`env ensure --target ${target} failed (${String(r.exitCode)}): ${r.stderr}`);
  return { s, action: (JSON.parse(r.stdout) as { env: { action: string } }).env.action };
}

/** The peer: no record, no hash: venv + install every time (OpenSSH for the pool). */
async function peer(target: "local" | "pool", prefix: string): Promise<number> {
  const script = `${uv} venv --allow-existing -q ${prefix} && ${uv} pip install -q --python ${prefix}/bin/python -r ${reqs} --find-links ${wheels} --no-index`;
  const t0 = performance.now();
  const r =
    target === "local"
      ? await execa("sh", ["-c", script], { reject: false })
      : await execa("ssh", ["-F", sshConfig, "benchpool", script], {
          reject: false,
          timeout: 600_000,
        });
  if (r.exitCode !== 0) throw new Error(`peer (${target}) failed: ${r.stderr}`);
  return (performance.now() - t0) / 1000;
}

try {
  const localPrefix = join(tmp, "envs/local");
  const poolPrefix = join(tmp, "envs/pool");
  const first = await ensure("local", localPrefix);
  log(`first local ensure: ${first.s.toFixed(3)} s (${first.action})`);
  const firstPool = await ensure("benchpool", poolPrefix);
  log(`first pool ensure: ${firstPool.s.toFixed(3)} s (${firstPool.action})`);
  const second: number[] = [];
  const secondPool: number[] = [];
  const peerLocal: number[] = [];
  const peerPool: number[] = [];
  const nodeFloor: number[] = [];
  const library: number[] = [];
  const spec = {
    backend: "uv" as const,
    prefix: localPrefix,
    file: reqs,
    uv,
    findLinks: [wheels],
    noIndex: true,
  };
  for (let i = 0; i < reps; i++) {
    // alternate ours and the peer's, so that load changes hit both alike
    const a = await ensure("local", localPrefix);
    const b = await ensure("benchpool", poolPrefix);
    if (a.action !== "unchanged" || b.action !== "unchanged")
      throw new Error(`second ensure was not a no-op: ${a.action}, ${b.action}`);
    second.push(a.s);
    secondPool.push(b.s);
    peerLocal.push(await peer("local", localPrefix));
    peerPool.push(await peer("pool", poolPrefix));
    // what ours costs beyond starting node: the same ensure as a library call, and `node -e 0`
    let t0 = performance.now();
    await ensureEnv(new LocalHost(), spec);
    library.push((performance.now() - t0) / 1000);
    t0 = performance.now();
    await execa(process.execPath, ["-e", "0"]);
    nodeFloor.push((performance.now() - t0) / 1000);
    log(
      `round ${i + 1}/${reps}: second local ${a.s.toFixed(3)} s, pool ${b.s.toFixed(3)} s; peer local ${peerLocal.at(-1)!.toFixed(3)} s, pool ${peerPool.at(-1)!.toFixed(3)} s`,
    );
  }
  const out = {
    bench: "env",
    first_local_s: round(first.s),
    second_local_s: round(median(second)),
    first_pool_s: round(firstPool.s),
    second_pool_s: round(median(secondPool)),
    peer_second_local_s: round(median(peerLocal)),
    peer_second_pool_s: round(median(peerPool)),
    library_second_local_s: round(median(library)),
    node_startup_s: round(median(nodeFloor)),
    second_local_min_s: round(Math.min(...second)),
    second_pool_min_s: round(Math.min(...secondPool)),
    reps,
    backend: "uv",
    packages: `parsl==${parsl} and its dependencies (15 wheels)`,
    goal: { second_local_s: 0.5, second_pool_s: 1 },
    met: median(second) < 0.5 && median(secondPool) < 1,
    machine: `${execFileSync("nproc", { encoding: "utf8" }).trim()} cpu, load ${execFileSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).split(" ").slice(0, 3).join(" ")}`,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
} finally {
  await stopAll();
  rmSync(tmp, { recursive: true, force: true });
}
