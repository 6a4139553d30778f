// src/ssh/openssh/forwarded-log.ts: the connections sshd forwarded, read from a master's -v log.
// The lines are OpenSSH 9.2's, as a master logged them for a direct forward (`-R 0:HOST:PORT`).
import { describe, expect, it } from "vitest";
import { ForwardedLog } from "../../../src/ssh/openssh/forwarded-log.js";

const arrive = (log: ForwardedLog, listen: number, from: number, ch: number): void => {
  log.line(
    "debug1: client_input_channel_open: ctype forwarded-tcpip rchan 5 win 2097152 max 32768",
  );
  log.line(
    `debug1: client_request_forwarded_tcpip: listen localhost port ${listen}, originator 127.0.0.1 port ${from}`,
  );
  log.line("debug1: connect_next: start for host 127.0.0.1 ([127.0.0.1]:48199)");
  log.line(`debug1: channel ${ch}: new forwarded-tcpip [127.0.0.1] (inactive timeout: 0)`);
  log.line("debug1: confirm forwarded-tcpip");
};

describe("ForwardedLog", () => {
  it("counts a watched port's connections: open, arrived, and when they ended", () => {
    const log = new ForwardedLog();
    log.watch(42017);
    arrive(log, 42017, 41406, 3);
    log.line("debug1: channel 3: connected to 127.0.0.1 port 48111");
    arrive(log, 42017, 41408, 4);
    arrive(log, 39999, 41410, 5); // another forward's: not counted here
    expect(log.count(42017)).toMatchObject({ live: 2, total: 2, ends: [] });
    log.line("debug1: channel 3: free: 127.0.0.1, nchannels 4");
    log.line("debug1: channel 2: free: client-session, nchannels 3"); // not a forwarded one
    const c = log.count(42017);
    expect(c).toMatchObject({ live: 1, total: 2 });
    expect(c.ends).toHaveLength(1);
  });

  it("finds the probe's connection by its port and says how it fared", async () => {
    const log = new ForwardedLog();
    log.watch(42017);
    const since = Date.now();
    arrive(log, 42017, 50001, 3);
    arrive(log, 42017, 50002, 4);
    log.line("debug1: channel 4: connection failed: Connection refused");
    log.line("connect_to 127.0.0.1 port 48199: failed.");
    log.line("debug1: channel 3: connected to 127.0.0.1 port 48199");
    expect((await log.outcome(42017, 50002, since, 10))?.outcome).toEqual({
      ok: false,
      reason: "Connection refused",
    });
    expect((await log.outcome(42017, 50001, since, 10))?.outcome).toEqual({ ok: true });
    // any connection (a relay's): one that connected wins
    expect((await log.outcome(42017, undefined, since, 10))?.outcome).toEqual({ ok: true });
    expect(await log.outcome(42017, 50003, since, 10)).toBeUndefined();
  });

  it("waits for an outcome the master has not logged yet", async () => {
    const log = new ForwardedLog();
    const since = Date.now();
    arrive(log, 42017, 50001, 3);
    const pending = log.outcome(42017, 50001, since, 2000);
    setTimeout(() => log.line("debug1: channel 3: connected to 127.0.0.1 port 1"), 50);
    expect((await pending)?.outcome).toEqual({ ok: true });
  });

  it("a connect that failed before any channel was made is a failure too", async () => {
    const log = new ForwardedLog();
    const since = Date.now();
    log.line(
      "debug1: client_request_forwarded_tcpip: listen localhost port 42017, originator 127.0.0.1 port 50001",
    );
    log.line("connect_to nowhere port 1: failed.");
    expect((await log.outcome(42017, 50001, since, 10))?.outcome).toMatchObject({ ok: false });
  });

  it("the probe is not counted, even when it ended before the check heard of it", async () => {
    const log = new ForwardedLog();
    log.watch(42017);
    const since = Date.now();
    arrive(log, 42017, 50001, 3);
    log.line("debug1: channel 3: connected to 127.0.0.1 port 1");
    log.line("debug1: channel 3: free: 127.0.0.1, nchannels 4");
    const a = await log.outcome(42017, 50001, since, 10);
    log.notCounted(a!);
    expect(log.count(42017)).toEqual({ live: 0, total: 0, ends: [] });
  });

  it("after the master ended, `live` is what the drop cut", () => {
    const log = new ForwardedLog();
    log.watch(42017);
    arrive(log, 42017, 50001, 3);
    log.line("debug1: channel 3: connected to 127.0.0.1 port 1");
    log.ended();
    log.line("debug1: channel 3: free: 127.0.0.1, nchannels 4"); // a late line changes nothing
    expect(log.count(42017)).toMatchObject({ live: 1, total: 1 });
  });
});
