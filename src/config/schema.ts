import os from 'node:os';
import { createRequire } from 'node:module';
import type { z } from 'zod';

type Zod = typeof z;
import { ownedSettingReason, settingValueProblem } from './owned-settings.js';
import { parsePgMemory, parseSize, formatBytes } from './sizes.js';
import { DURATION, parseDuration } from './duration.js';

/**
 * The prodhome.yaml schema. Objects are strict so a typo is an error with a "did you mean",
 * never a silently ignored key. Cross-field rules (duplicate ports, caps that cannot fit) live in
 * `checkLab` at the bottom, each reporting the path it is about.
 */

export const NODE_ROLES = ['publisher', 'subscriber', 'metrics', 'standalone'] as const;
export const PUBLISH_OPERATIONS = ['insert', 'update', 'delete', 'truncate'] as const;

/** The schemas, built with zod on first use: commands that read no config file never load zod. */
function build(z: Zod) {
  const MIN_MEMORY = 32 * 1024 ** 2;

  const memoryCap = z
    .string({ error: 'expected a size such as 256MiB or 1GiB' })
    .superRefine((text, ctx) => {
      const bytes = parseSize(text);
      if (bytes === undefined) {
        ctx.addIssue({ code: 'custom', message: `expected a size such as 256MiB or 1GiB, got "${text}"` });
      } else if (bytes < MIN_MEMORY) {
        ctx.addIssue({ code: 'custom', message: `${text} is too small for a Postgres server; use at least ${formatBytes(MIN_MEMORY)}` });
      } else if (bytes > os.totalmem()) {
        ctx.addIssue({ code: 'custom', message: `${text} is more than this machine has (${formatBytes(os.totalmem())})` });
      }
    });

  const cpus = z
    .number({ error: 'expected a number of CPUs such as 0.5 or 2' })
    .superRefine((n, ctx) => {
      const have = os.availableParallelism();
      if (!(n > 0)) ctx.addIssue({ code: 'custom', message: `expected a positive number of CPUs such as 0.5, got ${n}` });
      else if (n > have) ctx.addIssue({ code: 'custom', message: `${n} CPUs is more than this machine has (${have})` });
    });

  const pgMemorySetting = (bareUnitBytes: number, example: string) =>
    z.union([z.string(), z.number()], { error: `expected a Postgres size such as ${example}` }).superRefine((v, ctx) => {
      if (parsePgMemory(v, bareUnitBytes) === undefined) {
        ctx.addIssue({ code: 'custom', message: `expected a Postgres size such as ${example} (units B, kB, MB, GB, TB), got "${v}"` });
      }
    });

  const port = z
    .number({ error: 'expected a port number between 1024 and 65535' })
    .int('expected a whole port number')
    .min(1024, 'ports below 1024 need root; pick one between 1024 and 65535')
    .max(65535, 'expected a port number between 1024 and 65535');

  const settingValue = z.union([z.string(), z.number(), z.boolean()], {
    error: 'expected a setting value (string, number or boolean)',
  });

  const PostgresBinariesSchema = z.strictObject({
    /** Directory holding initdb, pg_ctl and postgres. Wins over PRODHOME_PG_BIN and the defaults. */
    binDir: z.string().min(1).optional(),
    /** Major version to look for among installed binaries (npm package, system), e.g. 15 or 17. */
    version: z.number().int().min(10).max(99).optional(),
  });


  const NodeSchema = z.strictObject({
    role: z.enum(NODE_ROLES).optional(),
    /** An existing server, used as it is: never initialised, started, stopped or deleted. */
    url: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL')
      .optional(),
    port: port.optional(),
    memory: memoryCap.optional(),
    cpus: cpus.optional(),
    max_connections: z.number().int().min(3).max(10000).optional(),
    shared_buffers: pgMemorySetting(8192, '128MB').optional(),
    work_mem: pgMemorySetting(1024, '4MB').optional(),
    settings: z.record(z.string().regex(/^[a-z_][a-z0-9_.]*$/, 'expected a Postgres setting name'), settingValue).optional(),
    postgres: PostgresBinariesSchema.optional(),
  });

  /** A Postgres identifier from config: used verbatim (case kept) and always quoted in SQL. */
  const pgName = (what: string) =>
    z
      .string()
      .min(1, `${what} names cannot be empty`)
      .max(63, `${what} names are at most 63 bytes in Postgres`)
      .refine((s) => !s.includes('\u0000'), `${what} names cannot contain NUL`);

  /** `table` or `schema.table`; each part is taken literally and quoted. */
  const tableName = z.string().regex(/^[^.]{1,63}(\.[^.]{1,63})?$/, 'expected a table name, or schema.table');

  const PublishedTableSchema = z.strictObject({
    /** Row filter (Postgres 15+ publishers): an SQL boolean expression over the table's columns. */
    where: z.string().min(1).optional(),
    /** Column list (Postgres 15+ publishers); default all columns. */
    columns: z.array(pgName('column')).min(1).optional(),
    /**
     * REPLICA IDENTITY to set on the publisher. `full` is what a row filter on columns outside the
     * primary key needs when updates and deletes are published.
     */
    replicaIdentity: z.enum(['default', 'full']).optional(),
  });


  const PublicationSchema = z.strictObject({
    node: z.string(),
    /** Tables published, each with an optional filter and column list; `{}` for the whole table. */
    tables: z.record(tableName, PublishedTableSchema.nullable()).optional(),
    allTables: z.boolean().optional(),
    publish: z.array(z.enum(PUBLISH_OPERATIONS)).min(1).optional(),
  });

  const SubscriptionSchema = z.strictObject({
    /** The subscriber node. */
    node: z.string(),
    publications: z.array(z.string()).min(1, 'a subscription needs at least one publication'),
    options: z
      .strictObject({
        copy_data: z.boolean().optional(),
        streaming: z.union([z.boolean(), z.enum(['on', 'off', 'parallel'])]).optional(),
        binary: z.boolean().optional(),
        disable_on_error: z.boolean().optional(),
      })
      .optional(),
  });

  const SchemaEntrySchema = z
    .strictObject({
      /** Node to run it on; default every node with role publisher. */
      node: z.string().optional(),
      sql: z.string().optional(),
      /** An .sql file, relative to the config file. */
      file: z.string().optional(),
    })
    .refine((e) => (e.sql === undefined) !== (e.file === undefined), { message: 'give exactly one of sql: or file:' });

  const SeedEntrySchema = z
    .strictObject({
      node: z.string().optional(),
      table: tableName,
      /** CSV text with a header row, loaded when the table is empty. */
      csv: z.string().optional(),
      /** A CSV file with a header row, relative to the config file. */
      file: z.string().optional(),
    })
    .refine((e) => (e.csv === undefined) !== (e.file === undefined), { message: 'give exactly one of csv: or file:' });

  const nodeName = z.string().regex(/^[a-z][a-z0-9_-]{0,30}$/, 'node names are lower-case letters, digits, - and _, starting with a letter');

  const LabSchema = z.strictObject({
    lab: z
      .string()
      .regex(/^[a-z][a-z0-9_-]{0,30}$/, 'lab names are lower-case letters, digits, - and _, starting with a letter')
      .default('prodhome'),
    postgres: PostgresBinariesSchema.optional(),
    /** The OS user local servers run as when prodhome runs as root (Postgres refuses root). */
    runAs: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'expected an OS user name')
      .default('prodhome'),
    ports: z
      .strictObject({ from: port, to: port })
      .refine((r) => r.from <= r.to, { message: 'ports.from must not be above ports.to' })
      .default({ from: 54320, to: 54399 }),
    nodes: z.record(nodeName, NodeSchema).refine((n) => Object.keys(n).length > 0, { message: 'a lab needs at least one node' }),
    /** What the lab's agent samples and where it sends it. */
    metrics: z
      .strictObject({
        /** Time between samples: 1s by default, 250ms at the least. */
        interval: z
          .string()
          .regex(DURATION, 'expected a duration such as 250ms, 1s or 1m')
          .refine((d) => (parseDuration(d) ?? 250) >= 250, { message: 'the shortest interval is 250ms' })
          .default('1s'),
        /** Where points go, by URI: file:///path.lp, file:-, influx://host:8086/db, influx2://host:8086?org=&bucket= */
        sinks: z.array(z.string().min(1)).default([]),
        /** The node whose Postgres stores the samples (schema metrics); default the first node with role metrics. false: none. */
        store: z.union([z.literal(false), z.string()]).optional(),
        /** How long the store keeps samples: whole days, as 7d. */
        retention: z.string().regex(/^\d+d$/, 'expected whole days, such as 7d').default('7d'),
        /** /metrics for Prometheus on 127.0.0.1, served by the agent; false turns it off. */
        prometheus: z.union([z.literal(false), z.strictObject({ port: port.optional() })]).default({}),
      })
      .default({ interval: '1s', sinks: [], retention: '7d', prometheus: {} }),
    /** The live web dashboard the agent serves on 127.0.0.1 (`prodhome dashboard`); false turns it off. */
    dashboard: z.union([z.literal(false), z.strictObject({ port: port.optional() })]).default({}),
    /** SQL run once on publishers before replication is set up (the lab's own tables). */
    schema: z.array(SchemaEntrySchema).optional(),
    /** Rows loaded into empty tables. */
    seed: z.array(SeedEntrySchema).optional(),
    publications: z.record(pgName('publication'), PublicationSchema).optional(),
    subscriptions: z.record(pgName('subscription'), SubscriptionSchema).optional(),
  }).superRefine(checkLab);
  return { LabSchema, NodeSchema, PublicationSchema, SubscriptionSchema };
}

type Schemas = ReturnType<typeof build>;
let built: Schemas | undefined;

/** The prodhome.yaml schema (zod is loaded, and the schemas made, on the first call). */
export function labSchema(): Schemas['LabSchema'] {
  built ??= build((createRequire(import.meta.url)('zod') as { z: Zod }).z);
  return built.LabSchema;
}

/** The zod the schemas are made with (one copy in the process: zod.toJSONSchema needs the same). */
export function zod(): Zod {
  return (createRequire(import.meta.url)('zod') as { z: Zod }).z;
}

export type LabInput = z.input<Schemas['LabSchema']>;
export type LabParsed = z.output<Schemas['LabSchema']>;
export type NodeParsed = z.output<Schemas['NodeSchema']>;

const LOCAL_ONLY_KEYS = ['port', 'memory', 'cpus', 'max_connections', 'shared_buffers', 'work_mem', 'settings', 'postgres'] as const;

type LabShape = {
  nodes: Record<string, NodeShape>;
  metrics?: { store?: string | false };
  schema?: { node?: string }[];
  seed?: { node?: string }[];
  publications?: Record<string, { node: string; tables?: unknown; allTables?: boolean }>;
  subscriptions?: Record<string, { node: string; publications: string[] }>;
};

/** What the cross-field checks read of a node (spelt out: the schema's own type is built from them). */
type NodeShape = Partial<Record<(typeof LOCAL_ONLY_KEYS)[number], unknown>> & {
  url?: string;
  port?: number;
  memory?: string;
  shared_buffers?: string | number;
  settings?: Record<string, string | number | boolean>;
};

function checkLab(lab: LabShape, ctx: z.RefinementCtx): void {
  checkNodes(lab, ctx);
  const store = lab.metrics?.store;
  if (typeof store === 'string' && !(store in lab.nodes)) {
    ctx.addIssue({ code: 'custom', path: ['metrics', 'store'], message: `no node "${store}" in this lab (nodes: ${Object.keys(lab.nodes).join(', ')})` });
  }
  checkReplication(lab, ctx);
}

/** Every node name a replication entry mentions exists; names that must differ do. */
function checkReplication(lab: LabShape, ctx: z.RefinementCtx): void {
  const nodes = Object.keys(lab.nodes);
  const unknownNode = (name: string, path: (string | number)[]) => {
    if (nodes.includes(name)) return false;
    const guess = nodes.find((n) => n.startsWith(name.slice(0, 3)));
    ctx.addIssue({ code: 'custom', path, message: `no node "${name}" in this lab (nodes: ${nodes.join(', ')})${guess ? ` — did you mean "${guess}"?` : ''}` });
    return true;
  };
  lab.schema?.forEach((e, i) => e.node && unknownNode(e.node, ['schema', i, 'node']));
  lab.seed?.forEach((e, i) => e.node && unknownNode(e.node, ['seed', i, 'node']));
  const pubs = lab.publications ?? {};
  for (const [name, pub] of Object.entries(pubs)) {
    unknownNode(pub.node, ['publications', name, 'node']);
    if (!pub.allTables && !pub.tables) ctx.addIssue({ code: 'custom', path: ['publications', name], message: 'a publication needs tables: or allTables: true' });
    if (pub.allTables && pub.tables) ctx.addIssue({ code: 'custom', path: ['publications', name, 'allTables'], message: 'give tables: or allTables: true, not both' });
  }
  for (const [name, sub] of Object.entries(lab.subscriptions ?? {})) {
    if (unknownNode(sub.node, ['subscriptions', name, 'node'])) continue;
    if (name in pubs) ctx.addIssue({ code: 'custom', path: ['subscriptions', name], message: `"${name}" is also a publication's name; give the subscription its own name (for example ${name}_sub)` });
    const publishers = new Set<string>();
    sub.publications.forEach((p, i) => {
      const pub = pubs[p];
      if (!pub) {
        const names = Object.keys(pubs);
        ctx.addIssue({ code: 'custom', path: ['subscriptions', name, 'publications', i], message: `no publication "${p}" in this lab${names.length ? ` (publications: ${names.join(', ')})` : ''}` });
        return;
      }
      publishers.add(pub.node);
      if (pub.node === sub.node) ctx.addIssue({ code: 'custom', path: ['subscriptions', name, 'node'], message: `subscription "${name}" would subscribe node "${sub.node}" to its own publication "${p}"` });
    });
    if (publishers.size > 1) ctx.addIssue({ code: 'custom', path: ['subscriptions', name, 'publications'], message: `one subscription connects to one publisher, but these publications live on ${[...publishers].join(' and ')}; split it in two` });
  }
}

function checkNodes(lab: LabShape, ctx: z.RefinementCtx): void {
  const portOwner = new Map<number, string>();
  for (const [name, node] of Object.entries(lab.nodes)) {
    if (node.url) {
      for (const key of LOCAL_ONLY_KEYS) {
        if (node[key] !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['nodes', name, key],
            message: `node "${name}" is external (url:), so prodhome does not run it; remove "${key}" or remove "url"`,
          });
        }
      }
      continue;
    }
    if (node.port !== undefined) {
      const other = portOwner.get(node.port);
      if (other) {
        ctx.addIssue({ code: 'custom', path: ['nodes', name, 'port'], message: `port ${node.port} is also given to node "${other}"; give each node its own port` });
      } else portOwner.set(node.port, name);
    }
    for (const [key, value] of Object.entries(node.settings ?? {})) {
      const problem = ownedSettingReason(key, name) ?? settingValueProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', path: ['nodes', name, 'settings', key], message: problem });
    }
    const cap = node.memory ? parseSize(node.memory) : undefined;
    const buffers = node.shared_buffers !== undefined ? parsePgMemory(node.shared_buffers, 8192) : undefined;
    if (cap !== undefined && buffers !== undefined && buffers >= cap * 0.8) {
      ctx.addIssue({
        code: 'custom',
        path: ['nodes', name, 'shared_buffers'],
        message: `shared_buffers ${node.shared_buffers} does not fit in this node's memory cap ${node.memory}; keep it under about a quarter of the cap`,
      });
    }
  }
}

