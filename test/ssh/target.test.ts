// Target parsing: the accepted forms and a clear error for each malformed one.
import { describe, expect, it } from "vitest";
import { parsePort, parseTarget } from "../../src/ssh/target.js";

describe("parseTarget", () => {
  it("accepts user@host:port, aliases, IPv6 and ssh:// forms", () => {
    expect(parseTarget("alice@hpc.example.org:2222")).toEqual({
      raw: "alice@hpc.example.org:2222",
      user: "alice",
      host: "hpc.example.org",
      port: 2222,
    });
    expect(parseTarget("cluster")).toEqual({ raw: "cluster", host: "cluster" });
    expect(parseTarget("[::1]:2200")).toMatchObject({ host: "::1", port: 2200 });
    expect(parseTarget("bob@[fe80::1%eth0]")).toMatchObject({ user: "bob", host: "fe80::1%eth0" });
    expect(parseTarget("::1")).toMatchObject({ host: "::1" });
    expect(parseTarget("ssh://u@h:22")).toMatchObject({ user: "u", host: "h", port: 22 });
    expect(parseTarget("first.last@h")).toMatchObject({ user: "first.last" });
  });

  it.each([
    ["", /empty/],
    ["a b", /whitespace/],
    ["@host", /user before `@` is empty/],
    ["user@", /host is empty/],
    ["host:", /port after `:` is empty/],
    ["host:0", /1-65535/],
    ["host:65536", /1-65535/],
    ["host:abc", /1-65535, got `abc`/],
    ["[::1", /not closed/],
    ["[::1]x", /unexpected/],
    ["[host]:22", /not an IPv6/],
    ["ho$t", /not a valid host name/],
    ["a/b", /contains `\/`/],
  ])("rejects %j", (raw, why) => {
    try {
      parseTarget(raw);
      throw new Error("accepted");
    } catch (err) {
      expect(err).toMatchObject({ code: "INVALID_ARGUMENT" });
      expect((err as Error).message).toMatch(why);
      if (!/1-65535/.test(String(why)))
        expect((err as Error).message).toContain("user@host[:port]");
    }
  });

  it("parsePort names what was wrong", () => {
    expect(parsePort("22", "x")).toBe(22);
    expect(() => parsePort(70000, "`remote_port`")).toThrow(
      "Expected `remote_port` to be an integer 1-65535, got `70000` (number)",
    );
  });
});
