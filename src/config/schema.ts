import os from 'node:os';
import { z } from 'zod';
import { parsePgMemory, parseSize, formatBytes } from './sizes.js';

/**
 * The prodhome.yaml schema. Objects are strict so a typo is an error with a "did you mean",
 * never a silently ignored key. Cross-field rules (duplicate ports, caps that cannot fit) live in
 * `checkLab` at the bottom, each reporting the path it is about.
 */

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

export const PostgresBinariesSchema = z.strictObject({
  /** Directory holding initdb, pg_ctl and postgres. Wins over PRODHOME_PG_BIN and the defaults. */
  binDir: z.string().min(1).optional(),
  /** Major version to look for among installed binaries (npm package, system), e.g. 15 or 17. */
  version: z.number().int().min(10).max(99).optional(),
});

export const NODE_ROLES = ['publisher', 'subscriber', 'metrics', 'standalone'] as const;

export const NodeSchema = z.strictObject({
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

const nodeName = z.string().regex(/^[a-z][a-z0-9_-]{0,30}$/, 'node names are lower-case letters, digits, - and _, starting with a letter');

export const LabSchema = z.strictObject({
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
}).superRefine(checkLab);

export type LabInput = z.input<typeof LabSchema>;
export type LabParsed = z.output<typeof LabSchema>;
export type NodeParsed = z.output<typeof NodeSchema>;

const LOCAL_ONLY_KEYS = ['port', 'memory', 'cpus', 'max_connections', 'shared_buffers', 'work_mem', 'settings', 'postgres'] as const;

function checkLab(lab: { nodes: Record<string, NodeParsed> }, ctx: z.RefinementCtx): void {
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
