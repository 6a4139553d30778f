/** What other services (jobs, web) use of the executors module. */
export {
  checkExecutors,
  assertExecutors,
  parseExecutorsText,
  suggestKey,
  type ExecutorsCheck,
  type ExecutorsIssue,
} from "./check.js";
export {
  explainKeys,
  explainPools,
  explainText,
  poolRequirements,
  type KeyExplanation,
  type PoolRequirements,
  type Versions,
} from "./explain.js";
export {
  KEYS,
  KEY_NAMES,
  COMPLETED_KEYS,
  GROUP_TITLES,
  PROVIDERS,
  keySpec,
  type KeySpec,
  type KeyGroup,
  type ProviderName,
} from "./keys.js";
export {
  executorsFileSchema,
  executorEntrySchema,
  executorsJsonSchema,
  LABEL_PATTERN,
} from "./schema.js";
export { resolveExecutor, targetOf, type ResolvedExecutor } from "./resolve.js";
export { executorsModule } from "./module.js";
