/**
 * Every error a user can meet is a ProdhomeError: a stable SCREAMING_SNAKE code, a message that
 * names what was wrong and where, and (usually) what to do next. The CLI prints these without a
 * stack trace and exits with `exitCode` (2 for user errors); anything else is a bug.
 */
export type ErrorCode =
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_SYNTAX'
  | 'CONFIG_INVALID'
  | 'UNKNOWN_NODE'
  | 'PORT_IN_USE'
  | 'NO_FREE_PORT'
  | 'BINARIES_MISSING'
  | 'STATE_DIR_UNWRITABLE'
  | 'LAB_LOCKED'
  | 'LAB_NOT_UP'
  | 'NO_AGENT'
  | 'DASHBOARD_OFF'
  | 'DASHBOARD_FAILED'
  | 'DASHBOARD_PENDING'
  | 'OS_USER'
  | 'INITDB_FAILED'
  | 'START_FAILED'
  | 'STOP_FAILED'
  | 'UNSAFE_PATH'
  | 'EXTERNAL_UNREACHABLE'
  | 'CONFIRMATION_REQUIRED'
  | 'REPLICATION_PREFLIGHT'
  | 'REPLICATION_FAILED'
  | 'VERIFY_MISMATCH'
  | 'INTERRUPTED'
  | 'TABLE_NOT_FOUND'
  | 'TABLE_EXISTS'
  | 'CSV_INVALID'
  | 'IMPORT_BAD_ROWS'
  | 'LOAD_FAILED'
  | 'WORKLOAD_SETUP'
  | 'SCRIPT_SYNTAX'
  | 'SCRIPT_RUNTIME'
  | 'LOAD_CONNECT'
  | 'LOAD_MAX_ERRORS'
  | 'PGBENCH_MISSING'
  | 'PGBENCH_FAILED'
  | 'FAULT_FAILED'
  | 'REPLICATED_TABLE'
  | 'EXPERIMENT_INVALID'
  | 'EXPERIMENT_CLEANUP'
  | 'EXPERIMENT_FAILED'
  | 'USAGE';

export class ProdhomeError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown; exitCode?: number } = {}) {
    super(message, { cause: options.cause });
    this.name = 'ProdhomeError';
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? 2;
  }
}

export function isProdhomeError(e: unknown): e is ProdhomeError {
  return e instanceof ProdhomeError;
}

/** The message of any thrown value, for wrapping into a ProdhomeError. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
