// PgidSniffer (src/ssh/remote-command.ts): the wrapper's `\x1epgid=N` line is taken off stderr
// wherever the login shell's rc files put lines before it, and nothing else is held back; with
// `onStartup` those lines go there instead, unless the mark never comes.
import { describe, expect, it } from "vitest";
import { PGID_MARK, PgidSniffer } from "../../src/ssh/remote-command.js";

function feed(
  chunks: string[],
  onStartup?: (b: Buffer) => void,
): { out: string; pgid: number | undefined; calls: number } {
  let pgid: number | undefined;
  let calls = 0;
  const s = new PgidSniffer((p) => {
    pgid = p;
    calls++;
  }, onStartup);
  let out = "";
  for (const c of chunks) out += s.push(Buffer.from(c, "latin1")).toString("latin1");
  out += s.end().toString("latin1");
  return { out, pgid, calls };
}

describe("PgidSniffer", () => {
  it("takes the line off the front", () => {
    expect(feed([`${PGID_MARK}4242\nerr\n`])).toEqual({ out: "err\n", pgid: 4242, calls: 1 });
  });

  it("finds it after lines a login shell's rc files wrote, and passes those on", () => {
    const noise = "pyenv: cannot rehash: couldn't acquire lock\nModule foo loaded\n";
    expect(feed([noise, `${PGID_MARK}77\n`, "err\n"])).toEqual({
      out: `${noise}err\n`,
      pgid: 77,
      calls: 1,
    });
  });

  it("finds it split across chunks, byte by byte", () => {
    const text = `rc says hi\n${PGID_MARK}1234\nerr`;
    expect(feed([...text])).toEqual({ out: "rc says hi\nerr", pgid: 1234, calls: 1 });
  });

  it("holds back only an unfinished line that may become the mark", () => {
    const s = new PgidSniffer(() => undefined);
    expect(s.push(Buffer.from("line one\nline tw")).toString()).toBe("line one\nline tw");
    expect(s.push(Buffer.from("o\n\x1epg")).toString()).toBe("o\n");
    expect(s.push(Buffer.from("id=12\nerr")).toString()).toBe("err");
    expect(s.pgid).toBe(12);
  });

  it("no mark at all: everything is the caller's, and the pgid is unknown at the end", () => {
    expect(feed(["no wrapper here\n", "more"])).toEqual({
      out: "no wrapper here\nmore",
      pgid: undefined,
      calls: 1,
    });
  });

  it("a mark inside a line is not the wrapper's", () => {
    expect(feed([`x${PGID_MARK}5\n`])).toEqual({
      out: `x${PGID_MARK}5\n`,
      pgid: undefined,
      calls: 1,
    });
  });

  it("stops looking after 64 KiB of startup output", () => {
    let pgid: number | undefined = -1;
    const s = new PgidSniffer((p) => (pgid = p));
    const line = `${"x".repeat(1023)}\n`;
    let out = 0;
    for (let i = 0; i < 65; i++) out += s.push(Buffer.from(line)).length;
    expect(pgid).toBeUndefined();
    expect(out).toBe(65 * 1024);
    expect(s.push(Buffer.from(`${PGID_MARK}9\n`)).toString()).toBe(`${PGID_MARK}9\n`);
  });

  it("onStartup: the rc files' lines go there, split anywhere; what follows the mark stays", () => {
    const rc = "pyenv: cannot rehash\nmotd\n";
    const text = `${rc}${PGID_MARK}31\nerr after\n`;
    for (const chunks of [[...text], [text]]) {
      let startup = "";
      expect(feed(chunks, (b) => (startup += b.toString("latin1")))).toEqual({
        out: "err after\n",
        pgid: 31,
        calls: 1,
      });
      expect(startup).toBe(rc);
    }
  });

  it("onStartup: nothing is passed on before the mark, and no empty startup is handed over", () => {
    const got: string[] = [];
    const s = new PgidSniffer(
      () => undefined,
      (b) => got.push(b.toString()),
    );
    expect(s.push(Buffer.from("rc line\n")).length).toBe(0);
    expect(s.push(Buffer.from(`${PGID_MARK}8\nerr`)).toString()).toBe("err");
    expect(s.push(Buffer.from(" more")).toString()).toBe(" more");
    expect(got).toEqual(["rc line\n"]);
    const t = new PgidSniffer(
      () => undefined,
      (b) => got.push(b.toString()),
    );
    expect(t.push(Buffer.from(`${PGID_MARK}9\nx`)).toString()).toBe("x");
    expect(got).toEqual(["rc line\n"]);
  });

  it("onStartup and no mark (the command never started): everything stays in stderr", () => {
    const got: Buffer[] = [];
    expect(feed(["sh: 1: exec: sh: not found\n", "more"], (b) => got.push(b))).toEqual({
      out: "sh: 1: exec: sh: not found\nmore",
      pgid: undefined,
      calls: 1,
    });
    const s = new PgidSniffer(
      () => undefined,
      (b) => got.push(b),
    );
    const line = `${"x".repeat(1023)}\n`;
    let out = 0;
    for (let i = 0; i < 65; i++) out += s.push(Buffer.from(line)).length;
    expect(out).toBe(65 * 1024);
    expect(got).toEqual([]);
  });
});
