// The layer rule of docs/architecture.md: a module imports only from its own layer or below.
// LAYERS is that order, top first; each entry is a path regex under src/. Checked by `npm test`.
const LAYERS = [
  ["entry", "^src/index\\.ts$"],
  ["cli", "^src/cli/"],
  ["daemon", "^src/daemon/"],
  ["web", "^src/web/"],
  ["jobs", "^src/jobs/"],
  ["executors", "^src/executors/"],
  ["staging", "^src/staging/"],
  ["env", "^src/env/"],
  ["tunnels", "^src/tunnels/"],
  ["client", "^src/client/"],
  ["blocks", "^src/blocks/"],
  // src/ssh/ssh2/ (the ssh2 transport behind src/ssh/link.ts) is part of the ssh layer
  ["ssh", "^src/ssh/"],
  ["rpc", "^src/rpc/"],
  ["base", "^src/(errors|error-codes|exit-codes|events|version)\\.ts$|^src/util/|^src/remote/"],
];

// one rule per layer: nothing in it may import from a layer above it
const upward = LAYERS.slice(1).map(([name, path], i) => ({
  name: `no-import-up-from-${name}`,
  comment: `${name} is below ${LAYERS.slice(0, i + 1)
    .map(([n]) => n)
    .join(", ")} (docs/architecture.md)`,
  severity: "error",
  from: { path },
  to: {
    path: LAYERS.slice(0, i + 1)
      .map(([, p]) => `(${p})`)
      .join("|"),
  },
}));

module.exports = {
  forbidden: [
    ...upward,
    {
      name: "no-circular",
      comment: "a cycle makes the load order matter and the layers meaningless",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      name: "ssh2-only-in-its-transport",
      comment:
        "ssh2 is one transport behind SshLink (src/ssh/link.ts): only src/ssh/ssh2/ imports it, types included (docs/ssh.md)",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/ssh/ssh2/" },
      to: { path: "(^|/)node_modules/(@types/)?ssh2/|^ssh2$" },
    },
    {
      name: "transports-only-behind-the-link",
      comment:
        "services reach a connection through Hosts/SshLease and SshLink, never a transport's module (docs/ssh.md)",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/ssh/" },
      to: { path: "^src/ssh/ssh2/" },
    },
    {
      name: "every-module-has-a-layer",
      comment: "a new folder under src/ gets its place in LAYERS (and in docs/architecture.md)",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^src/", pathNot: LAYERS.map(([, p]) => `(${p})`).join("|") },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^src/web/assets/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".js"] },
  },
};
