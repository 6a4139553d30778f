/** What the executors and jobs services use of the worker-block lifecycle. */
export {
  type BlockEnv,
  type BlockInfo,
  type BlockState,
  type StartBlock,
  parseBlockStatus,
} from "./block.js";
export { BLOCK_MARK, remoteDir } from "./commands.js";
export { BlockManager } from "./manager.js";
