export { loadConfig, configFromText, findConfigFile, parseConfigText, parseYamlWithLines, type YamlWithLines, parseTableRef, didYouMean, readReplicationFiles, CONFIG_FILE_NAME, type LoadOptions } from './load.js';
export { DEFAULT_CONFIG_YAML, defaultConfigFor, SCHEMA_FILE } from './default-lab.js';
export { labSchema, NODE_ROLES } from './schema.js';
export { parseDuration, durationOption, DURATION_EXAMPLES } from './duration.js';
export { parseSize, parseRate, formatBytes } from './sizes.js';
export { labJsonSchema } from './json-schema.js';
export type { LabConfig, NodeSpec, NodeRole, TableRef, PublishedTable, PublicationSpec, SubscriptionSpec, ReplicationConfig } from './types.js';
export { CONFIG_CACHE_FILE } from './cache.js';
