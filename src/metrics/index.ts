export { loadCatalog, sqlFor, appliesTo, CATALOG_DIR, type MetricDefinition, type MetricField } from './catalog.js';
export { Collector, type CollectorNode, type CollectorOptions, type Point } from './collector.js';
export { ProcessSampler, parseCpuTime, parsePsListing, type ProcessSamplerOptions, type ProcessTarget } from './process.js';
