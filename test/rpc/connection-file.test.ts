import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  defaultRuntimeDir,
  newKey,
  pidAlive,
  readConnectionFile,
  removeConnectionFile,
  writeConnectionFile,
  type ConnectionInfo,
} from "../../src/rpc/connection-file.js";
import { limitsOf } from "../../src/rpc/limits.js";
import { ensurePrivateDir } from "../../src/util/private-dir.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "psc-cf-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function info(pid = process.pid): ConnectionInfo {
  return {
    endpoint: "ipc:///tmp/x.sock",
    protocol_version: 1,
    signature_scheme: "hmac-sha256",
    key: newKey().toString("hex"),
    pid,
    started_at: new Date().toISOString(),
    version: "0.1.0",
  };
}

function deadPid(): number {
  return spawnSync(process.execPath, ["-e", ""]).pid!;
}

describe("connection file", () => {
  it("is written with mode 0600 and read back", () => {
    const file = join(dir, "sidecar.json");
    const i = info();
    writeConnectionFile(file, i);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readConnectionFile(file)).toEqual(i);
  });

  it("carries the sidecar's limits; an older file without them reads as the defaults", () => {
    const file = join(dir, "sidecar.json");
    const i = { ...info(), limits: { message_bytes: 65536, pending_bytes: 131072 } };
    writeConnectionFile(file, i);
    expect(limitsOf(readConnectionFile(file))).toEqual(i.limits);
    rmSync(file);
    writeConnectionFile(file, info());
    expect(readConnectionFile(file).limits).toBeUndefined();
    expect(limitsOf(readConnectionFile(file))).toEqual({
      message_bytes: 16 * 1024 * 1024,
      pending_bytes: 32 * 1024 * 1024,
    });
    writeFileSync(file, JSON.stringify({ ...info(), limits: { message_bytes: "big" } }), {
      mode: 0o600,
    });
    expect(() => readConnectionFile(file)).toThrow(
      expect.objectContaining({
        code: "BAD_CONNECTION_FILE",
        message: expect.stringContaining("limits.message_bytes"),
      }),
    );
  });

  it("is refused when group or others can read it", () => {
    const file = join(dir, "sidecar.json");
    writeConnectionFile(file, info());
    chmodSync(file, 0o644);
    expect(() => readConnectionFile(file)).toThrow(
      expect.objectContaining({
        code: "BAD_CONNECTION_FILE",
        message: expect.stringContaining(`chmod 600 ${file}`),
      }),
    );
  });

  it("reports a missing file as UNREACHABLE with how to start a sidecar", () => {
    expect(() => readConnectionFile(join(dir, "none.json"))).toThrow(
      expect.objectContaining({
        code: "UNREACHABLE",
        message: expect.stringContaining("parsl-sidecar serve --detach"),
      }),
    );
  });

  it("names what is wrong in a malformed file", () => {
    const file = join(dir, "sidecar.json");
    writeFileSync(file, "{not json", { mode: 0o600 });
    expect(() => readConnectionFile(file)).toThrow(
      expect.objectContaining({
        code: "BAD_CONNECTION_FILE",
        message: expect.stringContaining("not JSON"),
      }),
    );
    writeFileSync(file, JSON.stringify({ ...info(), key: "short" }), { mode: 0o600 });
    expect(() => readConnectionFile(file)).toThrow(
      expect.objectContaining({
        code: "BAD_CONNECTION_FILE",
        message: expect.stringContaining("`key`"),
      }),
    );
  });

  it("never overwrites a live sidecar's file", () => {
    const file = join(dir, "sidecar.json");
    const live = info(process.ppid);
    writeConnectionFile(file, live);
    expect(() => writeConnectionFile(file, info())).toThrow(
      expect.objectContaining({ code: "ALREADY_RUNNING" }),
    );
    expect(readConnectionFile(file).key).toBe(live.key);
  });

  it("replaces a stale file whose process is gone", () => {
    const file = join(dir, "sidecar.json");
    writeConnectionFile(file, info(deadPid()));
    const mine = info();
    writeConnectionFile(file, mine);
    expect(readConnectionFile(file)).toEqual(mine);
  });

  it("removes only its own file", () => {
    const file = join(dir, "sidecar.json");
    writeConnectionFile(file, info(process.ppid));
    removeConnectionFile(file);
    expect(existsSync(file)).toBe(true);
    removeConnectionFile(file, process.ppid);
    expect(existsSync(file)).toBe(false);
  });

  it("makes the runtime directory private", () => {
    const rt = join(dir, "rt");
    mkdirSync(rt, { mode: 0o755 });
    chmodSync(rt, 0o755);
    ensurePrivateDir(rt);
    expect(statSync(rt).mode & 0o777).toBe(0o700);
    writeFileSync(join(dir, "file"), "");
    expect(() => ensurePrivateDir(join(dir, "file"))).toThrow();
  });

  it("finds the default runtime directory like the Python client", () => {
    expect(defaultRuntimeDir({ PARSL_SIDECAR_RUNTIME_DIR: "/a", XDG_RUNTIME_DIR: "/b" })).toBe(
      "/a",
    );
    expect(defaultRuntimeDir({ XDG_RUNTIME_DIR: "/run/user/5" })).toBe("/run/user/5/parsl-sidecar");
    expect(defaultRuntimeDir({})).toBe(join(tmpdir(), `parsl-sidecar-${process.getuid!()}`));
  });

  it("tells live from dead processes", () => {
    expect(pidAlive(process.pid)).toBe(true);
    expect(pidAlive(deadPid())).toBe(false);
  });
});
