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
    // the suites run over ssh2 unless told otherwise (PARSL_SIDECAR_SSH_TRANSPORT); the openssh
    // transport's own tests pick it explicitly
    env: { PARSL_SIDECAR_SSH_TRANSPORT: process.env.PARSL_SIDECAR_SSH_TRANSPORT ?? "ssh2" },
  },
});
