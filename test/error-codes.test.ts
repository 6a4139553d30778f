// The one table of error codes and what TypeScript derives from it (src/errors.ts,
// src/exit-codes.ts); the Python module and the docs table are checked by test/generated.test.ts.
import { describe, expect, it } from "vitest";
import { ERROR_CODE_TABLE, ERROR_FAMILIES } from "../src/error-codes.js";
import { ErrorCodes } from "../src/errors.js";
import { EXIT, exitCodeFor } from "../src/exit-codes.js";

describe("error codes", () => {
  it("lists each code once, in the table's order", () => {
    const codes = ERROR_CODE_TABLE.map((r) => r.code);
    expect(new Set(codes).size).toBe(codes.length);
    expect([...ErrorCodes]).toEqual(codes);
  });

  it("puts a code named with a family's prefix in that family", () => {
    for (const [family, f] of Object.entries(ERROR_FAMILIES)) {
      const prefix = f.prefix;
      if (prefix === undefined) continue;
      for (const r of ERROR_CODE_TABLE.filter((r) => r.code.startsWith(prefix))) {
        expect(r.family, r.code).toBe(family);
      }
    }
  });

  it("gives each code an exit code of the CLI's documented ones", () => {
    const documented = new Set<number>(Object.values(EXIT));
    for (const r of ERROR_CODE_TABLE) expect(documented.has(r.exit), r.code).toBe(true);
  });

  it("maps codes to the CLI's exit codes (docs/cli.md), any other code to 1", () => {
    const special = {
      UNREACHABLE: 3,
      BAD_CONNECTION_FILE: 3,
      INVALID_ARGUMENT: 2,
      COMMAND_NOT_FOUND: 127,
      JOB_NOT_FOUND: 10,
      JOB_NOT_OWNED: 11,
      JOB_FINISHED: 12,
      REVIEW_CANCELLED: 4,
    } as Record<string, number>;
    for (const code of ErrorCodes) expect(exitCodeFor(code), code).toBe(special[code] ?? 1);
    expect(exitCodeFor("SOMETHING_NEW")).toBe(1);
  });
});
