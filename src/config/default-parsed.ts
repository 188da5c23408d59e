import type { LabParsed } from './schema.js';

/**
 * DEFAULT_CONFIG_YAML parsed and validated, as data: with no prodhome.yaml, commands get the
 * default lab without loading the YAML parser or zod. test/config.test.ts checks that parsing the
 * text gives exactly this, so the two cannot drift apart.
 */
export const DEFAULT_LAB_PARSED: LabParsed = {
  lab: 'prodhome',
  runAs: 'prodhome',
  ports: {
    from: 54320,
    to: 54399,
  },
  nodes: {
    publisher: {
      role: 'publisher',
      memory: '512MiB',
      max_connections: 100,
      shared_buffers: '128MB',
      work_mem: '4MB',
    },
    subscriber1: {
      role: 'subscriber',
      memory: '512MiB',
    },
    subscriber2: {
      role: 'subscriber',
      memory: '512MiB',
    },
    metrics: {
      role: 'metrics',
      memory: '512MiB',
    },
  },
  metrics: {
    interval: '1s',
    sinks: [],
    retention: '7d',
    prometheus: {},
  },
  dashboard: {},
  schema: [
    {
      sql: 'CREATE TABLE IF NOT EXISTS books (\n  id bigint PRIMARY KEY,\n  sku int,\n  title text,\n  topic text\n);\n',
    },
  ],
  seed: [
    {
      table: 'books',
      csv: 'id,sku,title,topic\n1,1001,The Five Dysfunctions of a Team,leadership\n2,1002,Designing Data-Intensive Applications,technical\n3,1003,Turn the Ship Around!,leadership\n4,1004,The Art of PostgreSQL,technical\n5,1005,Database Internals,technical\n',
    },
  ],
  publications: {
    leadership_pub: {
      node: 'publisher',
      tables: {
        books: {
          where: "topic = 'leadership'",
          replicaIdentity: 'full',
        },
      },
    },
    technical_pub: {
      node: 'publisher',
      tables: {
        books: {
          where: "topic = 'technical'",
          replicaIdentity: 'full',
        },
      },
    },
  },
  subscriptions: {
    leadership_sub: {
      node: 'subscriber1',
      publications: [
        'leadership_pub',
      ],
    },
    technical_sub: {
      node: 'subscriber2',
      publications: [
        'technical_pub',
      ],
    },
  },
};
