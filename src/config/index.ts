export { loadConfig, parseConfigText, parseTableRef, didYouMean, readReplicationFiles, CONFIG_FILE_NAME, type LoadOptions } from './load.js';
export { DEFAULT_CONFIG_YAML } from './default-lab.js';
export { LabSchema, NODE_ROLES, durationMs } from './schema.js';
export { parseSize, formatBytes } from './sizes.js';
export { labJsonSchema } from './json-schema.js';
export type { LabConfig, NodeSpec, NodeRole, TableRef, PublishedTable, PublicationSpec, SubscriptionSpec, ReplicationConfig } from './types.js';
