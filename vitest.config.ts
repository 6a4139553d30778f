// Vitest: every test file under test/, in forked processes, with generous timeouts for real
// servers and a process warning (MaxListeners, unhandled rejection, deprecation) failing the run.
// The tests that reach pools over SSH run twice, once per transport (PARSL_SIDECAR_SSH_TRANSPORT):
// the same files, parametrised by the project's environment; each transport's own tests
// (test/ssh/ssh2/ in the ssh2 project, test/ssh/openssh/ with the rest) and everything else
// run once.
import { defineConfig } from "vitest/config";

const OVER_SSH = [
  "test/ssh/*.test.ts",
  "test/tunnels/**/*.test.ts",
  "test/staging/**/*.test.ts",
  "test/jobs/**/*.test.ts",
  "test/executors/**/*.test.ts",
  "test/env/**/*.test.ts",
  "test/blocks/**/*.test.ts",
];
// picks each transport itself: once is enough
const ONCE = [
  "test/ssh/transport-choice.test.ts",
  "test/ssh/generation-ends.test.ts",
  "test/staging/copy-file.test.ts",
  "test/ssh/remote-command.test.ts",
];
const only = process.env.PARSL_SIDECAR_SSH_TRANSPORT;

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // two files at a time even on 2 vCPUs (vitest would run one): the tests mostly wait on real
    // servers: the suite took 695-801 s instead of 1,338 s (docs/testbed.md)
    maxWorkers: 2,
    setupFiles: ["test/setup.ts"],
    projects: [
      {
        extends: true,
        test: {
          name: "ssh2",
          include: [...OVER_SSH, "test/ssh/ssh2/**/*.test.ts"],
          env: { PARSL_SIDECAR_SSH_TRANSPORT: "ssh2" },
        },
      },
      {
        extends: true,
        test: {
          name: "openssh",
          include: OVER_SSH,
          exclude: ONCE,
          env: { PARSL_SIDECAR_SSH_TRANSPORT: "openssh" },
        },
      },
      {
        extends: true,
        test: {
          name: "rest",
          include: ["test/**/*.test.ts"],
          exclude: [...OVER_SSH, "test/ssh/ssh2/**"],
          env: { PARSL_SIDECAR_SSH_TRANSPORT: only ?? "ssh2" },
        },
      },
    ].filter((p) => !only || p.test.name === "rest" || p.test.name === only),
  },
});
