// Runs in every test process: a process warning is a bug, so it fails the run.
process.on("warning", (warning) => {
  if (warning.name === "ExperimentalWarning") return; // Node's own notes about features it ships
  throw warning;
});
