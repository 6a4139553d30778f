// StatusFilter: session.sh's lines taken off a stderr stream however it is cut into chunks, the
// caller's bytes passed on in order (what came before the open line too); and how a session
// that did not open is classed from ssh's words.
import { describe, expect, it } from "vitest";
import { classifyOpenFailure, StatusFilter } from "../../../src/ssh/openssh/session.js";

function feed(chunks: Buffer[]): { out: string; opened: boolean; filter: StatusFilter } {
  let out = "";
  let opened = false;
  const filter = new StatusFilter(
    (b) => (out += b.toString("latin1")),
    () => (opened = true),
  );
  for (const c of chunks) filter.push(c);
  filter.end();
  return { out, opened, filter };
}

const bytewise = (s: string): Buffer[] =>
  [...Buffer.from(s, "latin1")].map((b) => Buffer.from([b]));

describe("StatusFilter", () => {
  const stream = "motd note\n\x1epsc:open\n\x1epgid=42\nerr \x1e kept\n\x1epsc:exit=3\nlate\n";

  it("whole or byte by byte: the same bytes out, the status taken", () => {
    for (const chunks of [[Buffer.from(stream, "latin1")], bytewise(stream)]) {
      const r = feed(chunks);
      expect(r.opened).toBe(true);
      expect(r.out).toBe("motd note\n\x1epgid=42\nerr \x1e kept\nlate\n");
      expect(r.filter.status).toEqual({ code: 3 });
    }
  });

  it("a signal; a record separator at the very end is the caller's", () => {
    const r = feed(bytewise("\x1epsc:open\n\x1epsc:signal=TERM\ntail\x1e"));
    expect(r.filter.status).toEqual({ code: null, signal: "TERM" });
    expect(r.out).toBe("tail\x1e");
  });

  it("never opened: nothing passed on, ssh's words returned by end()", () => {
    const filter = new StatusFilter(
      () => {
        throw new Error("nothing expected");
      },
      () => undefined,
    );
    filter.push(
      Buffer.from(
        "mux_client_request_session: session request failed: Session open refused by peer\n",
      ),
    );
    expect(filter.end()).toMatch(/Session open refused/);
    expect(filter.opened).toBe(false);
  });
});

describe("classifyOpenFailure", () => {
  it("refused, no master, or another reason", () => {
    expect(
      classifyOpenFailure(
        "mux_client_request_session: session request failed: Session open refused by peer\nkex_exchange_identification: Connection closed by remote host\n",
      ).kind,
    ).toBe("refused");
    expect(
      classifyOpenFailure("kex_exchange_identification: Connection closed by remote host\n").kind,
    ).toBe("no-master");
    expect(classifyOpenFailure("something else\n").kind).toBe("failed");
  });
});
