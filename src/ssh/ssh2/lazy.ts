/**
 * ssh2, loaded on first use: it costs ~30-100 ms of start-up, which `run -- true` and every
 * command that never opens an SSH connection should not pay.
 */
import { createRequire } from "node:module";

type Ssh2 = typeof import("ssh2");
const require = createRequire(import.meta.url);
let loaded: Ssh2 | undefined;

export function ssh2(): Ssh2 {
  loaded ??= require("ssh2") as Ssh2;
  return loaded;
}
