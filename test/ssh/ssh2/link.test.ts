// The ssh2 transport as an SshLink (src/ssh/link.ts), against a real sshd on loopback: listen
// (port 0, connections handed to accept, close), connect, putFile (SFTP and `cat`), and the
// `ready` event after a reconnect.
import { readFileSync, writeFileSync } from "node:fs";
import { connect as tcpConnect, type Socket } from "node:net";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { isSshLease } from "../../../src/ssh/connections.js";
import type { SshLink } from "../../../src/ssh/link.js";
import { stopAllAfterAll } from "../../testbed/hooks.js";
import { echoServer, isListening, pattern, roundTrip } from "../../tunnels/helpers.js";
import { eventually, poolPerBlock } from "../helpers.js";

stopAllAfterAll();

/** Connect to host:port here; resolves with the socket, or rejects with the error (ECONNREFUSED). */
function dial(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host, port });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

describe("the ssh2 link (SshLink)", () => {
  const bed = poolPerBlock();
  const link = (): SshLink => {
    if (!isSshLease(bed.lease)) throw new Error("expected an ssh lease");
    return bed.lease.connection;
  };

  it("says it is ssh2, in info() too", { timeout: 20000 }, () => {
    expect(link().transport).toBe("ssh2");
    expect(link().info()).toMatchObject({ transport: "ssh2", state: "ready", target: "pool" });
  });

  it("exec: an exit status that came before anyone listened is still heard before close", {
    timeout: 20000,
  }, async () => {
    const { channel, release } = await link().exec("exit 3", 10000);
    try {
      // by now the exit status has come (and gone, unheard): the channel is not read yet
      await new Promise((r) => setTimeout(r, 500));
      const heard = await new Promise<unknown[]>((resolve, reject) => {
        let exit: unknown[] | undefined;
        channel.on("exit", (...args: unknown[]) => {
          exit = args;
        });
        channel.on("close", () => (exit ? resolve(exit) : reject(new Error("close, no exit"))));
        channel.resume();
        channel.stderr.resume();
      });
      expect(heard[0]).toBe(3);
    } finally {
      release();
    }
  });

  it("listen on port 0 returns the port sshd chose, and each connection reaches accept", {
    timeout: 20000,
  }, async () => {
    const accepted: Duplex[] = [];
    const listener = await link().listen("127.0.0.1", 0, (conn) => {
      accepted.push(conn);
      conn.pipe(conn); // an echo on this side
    });
    try {
      expect(listener.port).toBeGreaterThan(0);
      expect(isListening(listener.port)).toBe(true);
      const { sent, got } = await roundTrip("127.0.0.1", listener.port, 256 * 1024);
      expect(got.equals(sent)).toBe(true);
      const again = await roundTrip("127.0.0.1", listener.port, 1000);
      expect(again.got.equals(again.sent)).toBe(true);
      expect(accepted).toHaveLength(2);
    } finally {
      await listener.close();
    }
  });

  it("close() stops the listener: the port is refused afterwards", { timeout: 20000 }, async () => {
    let accepted = 0;
    const listener = await link().listen("127.0.0.1", 0, (conn) => {
      accepted++;
      conn.destroy();
    });
    (await dial("127.0.0.1", listener.port)).destroy();
    expect(await eventually(() => accepted === 1)).toBe(true);
    await listener.close();
    await listener.close(); // twice is fine
    expect(isListening(listener.port)).toBe(false);
    await expect(dial("127.0.0.1", listener.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    expect(accepted).toBe(1);
  });

  it("listen on a port sshd cannot bind rejects with the server's refusal", {
    timeout: 20000,
  }, async () => {
    // sshd's own port is taken
    await expect(link().listen("127.0.0.1", bed.s.sshd.port, () => undefined)).rejects.toThrow();
  });

  it("connect reaches a port as seen from the pool", { timeout: 20000 }, async () => {
    const echo = await echoServer("127.0.0.1");
    try {
      const ch = await link().connect("127.0.0.1", echo.port, 10000);
      const data = pattern(100_000);
      const back: Buffer[] = [];
      let n = 0;
      await new Promise<void>((resolve) => {
        ch.on("data", (b: Buffer) => {
          back.push(b);
          n += b.length;
          if (n >= data.length) resolve();
        });
        ch.write(data);
      });
      expect(Buffer.concat(back).equals(data)).toBe(true);
      expect(echo.accepted).toBe(1);
      ch.destroy();
      // a closed port is an SSH_CONNECT naming it
      await echo.close();
      await expect(link().connect("127.0.0.1", echo.port, 10000)).rejects.toMatchObject({
        code: "SSH_CONNECT",
        message: expect.stringContaining(`could not connect to 127.0.0.1:${echo.port}`),
      });
    } finally {
      await echo.close();
    }
  });

  it("putFile copies a large file (over SFTP) and a small one (through cat)", {
    timeout: 60000,
  }, async () => {
    const dir = bed.s.sshd.dir;
    const large = pattern(3 << 20);
    const small = Buffer.from("small file: it's $HOME, `not` expanded\n");
    writeFileSync(join(dir, "large.src"), large);
    writeFileSync(join(dir, "small.src"), small);
    writeFileSync(join(dir, "empty.src"), "");
    await link().putFile(join(dir, "large.src"), join(dir, "large copy"));
    await link().putFile(join(dir, "small.src"), join(dir, "small 'copy'"));
    await link().putFile(join(dir, "empty.src"), join(dir, "empty.copy"));
    expect(readFileSync(join(dir, "large copy")).equals(large)).toBe(true);
    expect(readFileSync(join(dir, "small 'copy'")).equals(small)).toBe(true);
    expect(readFileSync(join(dir, "empty.copy"))).toHaveLength(0);
  });

  it("a putFile that cannot write says which way failed, and the path", {
    timeout: 30000,
  }, async () => {
    const dir = bed.s.sshd.dir;
    writeFileSync(join(dir, "large2.src"), pattern(2 << 20));
    writeFileSync(join(dir, "small2.src"), "x");
    const missing = join(dir, "no-such-dir", "f");
    await expect(link().putFile(join(dir, "large2.src"), missing)).rejects.toMatchObject({
      code: "SSH_EXEC",
      message: expect.stringMatching(/over SFTP: No such file/),
      data: { path: missing },
    });
    await expect(link().putFile(join(dir, "small2.src"), missing)).rejects.toMatchObject({
      code: "SSH_EXEC",
      message: expect.stringMatching(/`cat` exited with 1: .*No such file or directory/),
      data: { path: missing },
    });
  });
});

describe("the ssh2 link across a reconnect", () => {
  const bed = poolPerBlock();

  it("emits ready with the new generation; a listener ends with its connection", {
    timeout: 30000,
  }, async () => {
    if (!isSshLease(bed.lease)) throw new Error("expected an ssh lease");
    const link = bed.lease.connection;
    const gen = link.generation;
    const listener = await link.listen("127.0.0.1", 0, (c) => c.destroy());
    const ready = new Promise<unknown[]>((r) => link.once("ready", (...args) => r(args)));
    await bed.s.sshd.killConnections();
    expect(await ready).toEqual([gen + 1]);
    expect(link.generation).toBe(gen + 1);
    expect(await eventually(() => !isListening(listener.port))).toBe(true);
    await listener.close(); // on the gone connection: resolves (bounded), nothing to stop
  });
});
