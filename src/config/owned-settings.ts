/**
 * postgresql.conf settings prodhome owns for a local node: what keeps a lab server on loopback,
 * behind passwords, reading its own files. A `settings:` entry for one of them is refused at
 * config load (it would silently undo a promise `up` prints), naming what to use instead.
 */
const OWNED: Record<string, (node: string) => string> = {
  listen_addresses: () => 'every node listens on 127.0.0.1 only (safe by default); `prodhome env <node>` prints its address',
  port: (node) => `use nodes.${node}.port`,
  unix_socket_directories: () => 'nodes have no Unix socket: every client connects over TCP with a password (`prodhome env <node>`)',
  unix_socket_group: () => 'nodes have no Unix socket',
  unix_socket_permissions: () => 'nodes have no Unix socket',
  hba_file: () => 'prodhome writes the node\'s pg_hba.conf itself (scram-sha-256 on loopback)',
  ident_file: () => 'prodhome writes the node\'s authentication files itself',
  data_directory: () => 'the data directory is the lab\'s (.prodhome/<lab>/nodes/<node>/data)',
  config_file: () => 'prodhome writes the node\'s configuration from this file',
  external_pid_file: () => 'prodhome tracks the postmaster itself',
  include: () => 'prodhome.conf takes no includes; put each setting under settings:',
  include_dir: () => 'prodhome.conf takes no includes; put each setting under settings:',
  include_if_exists: () => 'prodhome.conf takes no includes; put each setting under settings:',
  password_encryption: () => 'passwords are always scram-sha-256',
  ssl_cert_file: () => 'lab nodes listen on loopback only and take no certificate or key paths',
  ssl_key_file: () => 'lab nodes listen on loopback only and take no certificate or key paths',
  ssl_ca_file: () => 'lab nodes listen on loopback only and take no certificate or key paths',
  ssl_crl_file: () => 'lab nodes listen on loopback only and take no certificate or key paths',
  ssl_crl_dir: () => 'lab nodes listen on loopback only and take no certificate or key paths',
  ssl_dh_params_file: () => 'lab nodes listen on loopback only and take no certificate or key paths',
  ssl_passphrase_command: () => 'lab nodes listen on loopback only and take no certificate or key paths',
};

/** Why `settings.<name>` is refused for `node`, or undefined when prodhome does not own it. */
export function ownedSettingReason(name: string, node: string): string | undefined {
  const why = Object.hasOwn(OWNED, name) ? OWNED[name]!(node) : undefined;
  return why && `prodhome owns it: ${why}`;
}

/** A control character (newline, tab, NUL…) in a value would end or break its line in prodhome.conf. */
export function settingValueProblem(value: string | number | boolean): string | undefined {
  if (typeof value !== 'string') return undefined;
  // eslint-disable-next-line no-control-regex
  const bad = /[\u0000-\u001f\u007f]/.exec(value);
  return bad ? `the value holds a control character (U+${bad[0].charCodeAt(0).toString(16).padStart(4, '0')}); a setting value is one line of text` : undefined;
}
