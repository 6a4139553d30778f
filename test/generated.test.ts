// Every generated file matches what its source makes now (`npm run generate` writes them).
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { describe, expect, it } from "vitest";
import { generateAll, ROOT } from "../scripts/generate.js";

describe("generated files", () => {
  for (const g of generateAll()) {
    it(`${relative(ROOT, g.path)} is fresh (else run \`npm run generate\`)`, () => {
      const stale = readFileSync(g.path, "utf8") !== g.text;
      expect(stale, `${relative(ROOT, g.path)} is stale: run \`npm run generate\``).toBe(false);
    });
  }
});
