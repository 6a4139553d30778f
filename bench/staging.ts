/**
 * Staging throughput, all against one private sshd in one run, into a tmpfs on the pool side:
 * a 1 GiB file and 10,000 files of 4 KiB from here to the pool by the sidecar over each SSH
 * transport (`--transport ssh2|openssh` for one; default both; warm SSH connection, verified
 * with SHA-256 on both ends) and by `rsync -a`, `scp -O -r` and `tar | ssh` (system OpenSSH
 * clients, same key, the same cipher pinned on every side); S3 (moto) to the pool for the same
 * data, streamed through the sidecar vs download-then-upload (over the last transport named);
 * and the overhead of stage_app + log_app with empty dicts on 2,000 no-op Parsl apps
 * (bench/staging_decorators.py). Medians of alternating repetitions. `--quick`: 128 MiB and
 * 2,000 files, one repetition, 500 apps. Last stdout line: one JSON object.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { Daemon } from "../src/daemon/daemon.js";
import { SshConnections } from "../src/ssh/connections.js";
import { StagingService } from "../src/staging/service.js";
import { startS3 } from "../test/testbed/s3.js";
import { stopAll } from "../test/testbed/registry.js";
import { runBench } from "./lib/run.js";
import { sshdEntry, writeSshConfig } from "../test/testbed/ssh-config.js";
import { startSshd } from "../test/testbed/sshd.js";
import { benchTransports, CIPHER } from "./lib/transports.js";

const quick = process.argv.includes("--quick");
// overrides for exploring: PSC_BENCH_FILE_MB, PSC_BENCH_FILES, PSC_BENCH_REPS, PSC_BENCH_APPS, PSC_BENCH_ONLY=local
const env = (k: string, d: number): number => (process.env[k] ? Number(process.env[k]) : d);
const FILE_BYTES = env("PSC_BENCH_FILE_MB", quick ? 128 : 1024) << 20;
const N_FILES = env("PSC_BENCH_FILES", quick ? 2000 : 10_000);
const REPS = env("PSC_BENCH_REPS", quick ? 1 : 3);
const APPS = env("PSC_BENCH_APPS", quick ? 500 : 2000);
const ONLY_LOCAL = process.env.PSC_BENCH_ONLY === "local";
const transports = benchTransports();
const PEERS = ["rsync", "scp", "tar_ssh"] as const;
const log = (s: string): void => void process.stderr.write(`${s}\n`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;

async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<Record<string, unknown>> {
  const base = mkdtempSync("/dev/shm/psc-bench-staging-");
  const home = join(base, "home");
  mkdirSync(home);
  const sshd = await startSshd({ extraConfig: [`SetEnv HOME=${home}`] });
  const configPath = writeSshConfig(
    base,
    [
      sshdEntry("pool", sshd, {
        extra: {
          IdentitiesOnly: "yes",
          IdentityAgent: "none",
          StrictHostKeyChecking: "yes",
          Ciphers: CIPHER,
        },
      }),
    ],
    "ssh_config",
  );
  const unders = transports.map((t) => {
    const pool = new SshConnections({
      configPath,
      transport: t,
      runtimeDir: mkdtempSync(join(base, `rt-${t}-`)),
    });
    return { t, pool, service: new StagingService({ hosts: pool }) };
  });
  // S3 → pool and the seeding go over one of them
  const { service } = unders.at(-1)!;
  const s3 = await startS3();
  Object.assign(process.env, s3.env, {
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  });
  const s3c = new S3Client({
    endpoint: s3.endpoint,
    forcePathStyle: true,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  await s3c.send(new CreateBucketCommand({ Bucket: "bench" }));

  // the pool side writes into its own tmpfs
  const dst = join(base, "pool-dst");
  mkdirSync(dst);
  const mounted =
    spawnSync("mount", [
      "-t",
      "tmpfs",
      "-o",
      `size=${Math.ceil((FILE_BYTES * 3) / 2 ** 30) + 1}g`,
      "tmpfs",
      dst,
    ]).status === 0;
  if (!mounted)
    log(
      `*** could not mount a tmpfs at ${dst} (needs root); writing into ${base} (a tmpfs too) ***`,
    );

  log(`preparing ${FILE_BYTES >> 20} MiB file and ${N_FILES} files of 4 KiB in ${base}/src`);
  const src = join(base, "src");
  mkdirSync(join(src, "tree"), { recursive: true });
  execFileSync("sh", ["-c", `head -c ${FILE_BYTES} /dev/urandom > ${join(src, "big.bin")}`]);
  for (let i = 0; i < N_FILES; i++) {
    const sub = join(src, "tree", `d${i % 100}`);
    if (i < 100) mkdirSync(sub);
    writeFileSync(join(sub, `f${i}.dat`), randomBytes(4096));
  }
  const sshOpts = [
    "-F",
    "none",
    "-i",
    sshd.keyPath,
    "-o",
    `UserKnownHostsFile=${sshd.knownHostsPath}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    `Ciphers=${CIPHER}`,
  ];
  const sshCmd = ["ssh", ...sshOpts, "-p", String(sshd.port)].join(" ");
  // tar | ssh: one tar stream, extracted on the pool
  const tarSsh = (dir: string, names: string): void =>
    void execFileSync("sh", [
      "-c",
      `tar -C ${dir} -cf - ${names} | ${sshCmd} ${remote} 'mkdir -p ${dst} && tar -C ${dst} -xf -'`,
    ]);
  const remote = `${sshd.user}@${sshd.host}`;
  const clear = (): void => {
    for (const n of ["big.bin", "tree", "s3-big.bin", "s3-tree"])
      rmSync(join(dst, n), { recursive: true, force: true });
  };
  const methods: Record<string, Record<string, () => Promise<unknown>>> = {
    file: {
      ...Object.fromEntries(
        unders.map((u) => [
          u.t,
          () =>
            u.service.transfer({
              src: `file://${src}/big.bin`,
              dst: `ssh://pool${dst}/big.bin`,
              type: "file",
            }),
        ]),
      ),
      rsync: async () =>
        execFileSync("rsync", [
          "-a",
          "-e",
          `ssh ${sshOpts.join(" ")} -p ${sshd.port}`,
          join(src, "big.bin"),
          `${remote}:${dst}/big.bin`,
        ]),
      scp: async () =>
        execFileSync("scp", [
          "-O",
          "-q",
          ...sshOpts,
          "-P",
          String(sshd.port),
          join(src, "big.bin"),
          `${remote}:${dst}/big.bin`,
        ]),
      tar_ssh: async () => tarSsh(src, "big.bin"),
    },
    dir: {
      ...Object.fromEntries(
        unders.map((u) => [
          u.t,
          () =>
            u.service.transfer({
              src: `file://${src}/tree`,
              dst: `ssh://pool${dst}/tree`,
              type: "directory",
            }),
        ]),
      ),
      rsync: async () =>
        execFileSync("rsync", [
          "-a",
          "-e",
          `ssh ${sshOpts.join(" ")} -p ${sshd.port}`,
          `${src}/tree/`,
          `${remote}:${dst}/tree/`,
        ]),
      scp: async () =>
        execFileSync("scp", [
          "-O",
          "-q",
          "-r",
          ...sshOpts,
          "-P",
          String(sshd.port),
          join(src, "tree"),
          `${remote}:${dst}/tree`,
        ]),
      tar_ssh: async () => tarSsh(src, "tree"),
    },
  };
  // warm the sidecar's connections (a daemon keeps them) and check that every method works
  for (const u of unders) {
    await u.service.transfer({
      src: `file://${src}/tree/d0`,
      dst: `ssh://pool${dst}/warm`,
      type: "directory",
    });
    rmSync(join(dst, "warm"), { recursive: true, force: true });
  }
  // what each transport negotiates (a transfer's connection closes with its last lease, as in
  // a daemon with nothing else on the pool: every transfer here includes connecting)
  const ciphers: Record<string, string | null> = {};
  for (const u of unders) {
    const lease = await u.pool.acquire("pool", "bench");
    ciphers[u.t] = u.pool.list()[0]?.cipher ?? null;
    lease.release();
  }

  const times: Record<string, number[]> = {};
  const add = (k: string, v: number): void => void (times[k] ??= []).push(v);
  for (let rep = 0; rep < REPS; rep++) {
    for (const shape of ["file", "dir"] as const) {
      const order = Object.keys(methods[shape]!);
      for (let i = 0; i < rep % order.length; i++) order.push(order.shift()!);
      for (const m of order) {
        clear();
        const t = await timed(methods[shape]![m]!);
        add(`${shape}.${m}`, t);
        log(`rep ${rep + 1} ${shape} ${m}: ${t.toFixed(3)} s`);
      }
    }
  }

  const m = (k: string): number => round(median(times[k]!));
  const shapeTimes = (shape: string): Record<string, number> =>
    Object.fromEntries(Object.keys(methods[shape]!).map((k) => [k, m(`${shape}.${k}`)]));
  const file = shapeTimes("file");
  const dir = shapeTimes("dir");
  const best = (x: Record<string, number>): number => Math.min(...PEERS.map((p) => x[p]!));
  // per transport: the best peer's time / ours (≥ 1: as fast as the best of them or faster)
  const perTransport = Object.fromEntries(
    transports.map((t) => [
      t,
      {
        cipher: ciphers[t],
        file_s: file[t],
        dir_s: dir[t],
        ratio_vs_best: {
          file: round(best(file) / file[t]!, 2),
          dir: round(best(dir) / dir[t]!, 2),
        },
        speedup_vs_rsync: {
          file: round(file.rsync! / file[t]!, 2),
          dir: round(dir.rsync! / dir[t]!, 2),
        },
        met: file[t]! <= best(file) && dir[t]! <= best(dir),
      },
    ]),
  );
  const closeAll = async (): Promise<void> => {
    for (const u of unders) {
      await u.service.close();
      await u.pool.close();
    }
  };
  if (ONLY_LOCAL) {
    await closeAll();
    if (mounted) spawnSync("umount", [dst]);
    rmSync(base, { recursive: true, force: true });
    await stopAll();
    return {
      bench: "staging-local-only",
      file_s: file,
      dir_s: dir,
      transports: perTransport,
      times,
    };
  }
  log("seeding S3");
  clear();
  await service.transfer({ src: `file://${src}/big.bin`, dst: "s3://bench/big.bin", type: "file" });
  await service.transfer({ src: `file://${src}/tree`, dst: "s3://bench/tree", type: "directory" });
  const stage = join(base, "twostep");
  const s3Methods: Record<string, Record<string, () => Promise<unknown>>> = {
    file: {
      stream: () =>
        service.transfer({
          src: "s3://bench/big.bin",
          dst: `ssh://pool${dst}/s3-big.bin`,
          type: "file",
        }),
      twostep: async () => {
        await service.transfer({
          src: "s3://bench/big.bin",
          dst: `file://${stage}/big.bin`,
          type: "file",
        });
        await service.transfer({
          src: `file://${stage}/big.bin`,
          dst: `ssh://pool${dst}/s3-big.bin`,
          type: "file",
        });
      },
    },
    dir: {
      stream: () =>
        service.transfer({
          src: "s3://bench/tree",
          dst: `ssh://pool${dst}/s3-tree`,
          type: "directory",
        }),
      twostep: async () => {
        await service.transfer({
          src: "s3://bench/tree",
          dst: `file://${stage}/tree`,
          type: "directory",
        });
        await service.transfer({
          src: `file://${stage}/tree`,
          dst: `ssh://pool${dst}/s3-tree`,
          type: "directory",
        });
      },
    },
  };
  for (let rep = 0; rep < REPS; rep++) {
    for (const shape of ["file", "dir"] as const) {
      const order = rep % 2 === 0 ? ["stream", "twostep"] : ["twostep", "stream"];
      for (const m of order) {
        clear();
        rmSync(stage, { recursive: true, force: true });
        const t = await timed(s3Methods[shape]![m]!);
        add(`s3${shape}.${m}`, t);
        log(`rep ${rep + 1} S3 ${shape} ${m}: ${t.toFixed(3)} s`);
      }
    }
  }
  await closeAll();
  s3c.destroy();

  log(`decorator overhead on ${APPS} no-op apps`);
  const daemon = await Daemon.start({ runtimeDir: join(base, "run"), stderrLevel: "silent" });
  const py = spawnSync(
    join(process.cwd(), ".venv/bin/python"),
    [join(process.cwd(), "bench/staging_decorators.py"), String(APPS)],
    {
      env: { ...process.env, PARSL_SIDECAR_CONNECTION_FILE: daemon.connectionFile },
      cwd: base,
      encoding: "utf8",
      timeout: 600_000,
    },
  );
  await daemon.close();
  if (py.status !== 0) throw new Error(`bench/staging_decorators.py failed:\n${py.stderr}`);
  const deco = JSON.parse(py.stdout.trim().split("\n").at(-1)!) as Record<string, number>;

  if (mounted) spawnSync("umount", [dst]);
  rmSync(base, { recursive: true, force: true });
  await stopAll();

  const s3Stream = round(m("s3file.stream") + m("s3dir.stream"));
  const s3Two = round(m("s3file.twostep") + m("s3dir.twostep"));
  return {
    bench: "staging",
    cipher_pinned: CIPHER,
    file_s: file,
    dir_s: dir,
    transports: perTransport,
    best_peer_s: { file: best(file), dir: best(dir) },
    s3_transport: unders.at(-1)!.t,
    s3_stream_s: s3Stream,
    s3_twostep_s: s3Two,
    s3_detail_s: {
      file_stream: m("s3file.stream"),
      file_twostep: m("s3file.twostep"),
      dir_stream: m("s3dir.stream"),
      dir_twostep: m("s3dir.twostep"),
    },
    decorator_overhead_ms: deco.overhead_ms,
    decorator_detail: deco,
    goals: {
      transports_ge_best_peer: Object.fromEntries(transports.map((t) => [t, perTransport[t]!.met])),
      stream_faster_than_twostep: s3Stream < s3Two,
      decorator_lt_1ms: deco.overhead_ms < 1,
    },
    sizes: { file_bytes: FILE_BYTES, files: N_FILES, file_size: 4096, apps: APPS, reps: REPS },
    quick,
    machine: { loadavg: loadavg().map((x) => round(x, 1)), tmpfs_mounted: mounted },
  };
}

runBench(main, log);
