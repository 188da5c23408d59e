export { loadCatalog, sqlFor, appliesTo, storeType, CATALOG_DIR, type MetricDefinition, type MetricField, type StoreType } from './catalog.js';
export { describeField, forStores, type FieldInfo } from './fields.js';
export { Collector, type CollectorNode, type CollectorOptions } from './collector.js';
export { ProcessSampler, parseCpuTime, parsePsListing, type ProcessSamplerOptions, type ProcessTarget } from './process.js';
export { startSamplingLoop, type SamplingLoop, type SamplingOptions } from './sampling.js';
export { HeartbeatWriter } from './heartbeat.js';
