// Vitest: every test file under test/, in forked processes, with generous timeouts for real
// servers and a process warning (MaxListeners, unhandled rejection, deprecation) failing the run.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    setupFiles: ["test/setup.ts"],
  },
});
