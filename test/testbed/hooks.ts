// Vitest glue: stop everything the test bed started after a test file, and loud skips.
import { afterAll } from "vitest";
import { stopAll } from "./registry.js";

/** Call at the top level of a test file: everything started is stopped after its tests. */
export function stopAllAfterAll(timeoutMs = 30000): void {
  afterAll(stopAll, timeoutMs);
}

/** Prints why a test (group) is skipped, so a skip is never silent. Returns the reason. */
export function warnSkip(what: string, reason: string): string {
  const msg = `SKIPPED ${what}: ${reason}`;
  console.warn(`\n*** ${msg} ***\n`);
  return msg;
}
