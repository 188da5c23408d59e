import { spawn } from 'node:child_process';
import type { EvalContext } from './expr.js';
import { ScriptRuntimeError, type PgbenchRandom } from './random.js';
import type { Command, Script, SqlCommand } from './script.js';
import type { ScriptSession, TransactionFailure, TransactionSource } from './types.js';
import { truth, valueString, type Value } from './values.js';
import type { Outcome, PipelineItem, ResultSet } from './wire.js';

/** The values a client starts with: pgbench's builtins (or -D's, which override them). */
export interface ClientVariables {
  scale: number;
  clientId: number;
  /** --random-seed (pgbench's :random_seed). */
  seed: number | bigint;
  /** pgbench's :default_seed, drawn from the run's seed. */
  defaultSeed: bigint;
  defines?: Record<string, string | number>;
}

/**
 * Runs a parsed script for one client, as pgbench's state machine does: commands in order, an
 * \if jumping over the branches not taken, \gset/\aset storing results into variables that
 * persist from one transaction to the next, \sleep pausing, pipelines sent whole. A runtime error
 * (division by zero, overflow, \gset on no row…) fails the transaction with a SCRIPT_… code.
 */
export function scriptSource(script: Script, initial: ClientVariables, random: PgbenchRandom, debug: (text: string) => void = (t) => process.stderr.write(`${t}\n`)): TransactionSource {
  const vars: (Value | undefined)[] = new Array<Value | undefined>(script.variables.length).fill(undefined);
  const set = (name: string, v: Value) => {
    const i = script.index.get(name);
    if (i !== undefined) vars[i] = v;
  };
  set('scale', BigInt(initial.scale));
  set('client_id', BigInt(initial.clientId));
  set('random_seed', BigInt.asIntN(64, BigInt(initial.seed)));
  set('default_seed', initial.defaultSeed);
  // -D values are text, as in pgbench (numbers given by callers are written as pgbench would read them)
  for (const [k, v] of Object.entries(initial.defines ?? {})) set(k, typeof v === 'number' ? String(v) : v);
  const commands = script.commands;
  let current = 0;
  const ctx: EvalContext = { vars, random, names: script.variables, debug: (t) => debug(`debug(script=0,command=${current + 1}): ${t}`) };
  const file = script.file;

  return {
    async run(session: ScriptSession): Promise<TransactionFailure | undefined> {
      const conn = session.conn;
      const protocol = session.protocol;
      let status: Outcome['status'] = 'I';
      let pipeline: PipelineItem[] | null = null;
      let pc = 0;
      try {
        while (pc < commands.length) {
          const c: Command = commands[pc]!;
          current = pc;
          switch (c.kind) {
            case 'sql': {
              const sql = c.sql;
              if (pipeline) {
                if (sql.store) throw new ScriptRuntimeError(`\\${sql.store.all ? 'aset' : 'gset'} is not allowed in pipeline mode`, 'SCRIPT_PIPELINE');
                pipeline.push({ statement: sql.statement, values: params(sql) });
                pc++;
                break;
              }
              const capture = sql.store !== undefined;
              const o = protocol === 'simple' ? await conn.query(substitute(sql), capture) : await conn.run(sql.statement, params(sql), protocol, capture);
              status = o.status;
              if (o.error) return { ...o.error, inTransaction: status !== 'I' };
              if (sql.store) store(sql, o.results ?? []);
              pc++;
              break;
            }
            case 'set':
              vars[c.target] = c.expr.eval(ctx);
              pc++;
              break;
            case 'if':
              pc = truth(c.expr.eval(ctx)) ? pc + 1 : c.onFalse;
              break;
            case 'goto':
              pc = c.target;
              break;
            case 'sleep': {
              const micros = sleepMicros(c);
              if (micros > 0) await session.sleep(micros / 1000);
              pc++;
              break;
            }
            case 'shell':
            case 'setshell': {
              const command = c.words.map((w) => (typeof w === 'string' ? w : shellValue(w.variable))).join(' ');
              if (c.kind === 'shell') await shell(command, false);
              else vars[c.target] = await shell(command, true);
              pc++;
              break;
            }
            case 'startpipeline':
              if (protocol === 'simple') throw new ScriptRuntimeError('cannot use pipeline mode with the simple query protocol (use -M extended or -M prepared)', 'SCRIPT_PIPELINE');
              if (pipeline) throw new ScriptRuntimeError('already in pipeline mode', 'SCRIPT_PIPELINE');
              if (protocol === 'prepared') {
                // As pgbench: prepare the pipeline's statements first, outside it.
                for (let k = pc + 1; k < commands.length && commands[k]!.kind !== 'endpipeline'; k++) {
                  const s = commands[k]!;
                  if (s.kind === 'sql' && !conn.isPrepared(s.sql.statement)) {
                    const o = await conn.prepare(s.sql.statement);
                    if (o.error) return { ...o.error, inTransaction: o.status !== 'I' };
                  }
                }
              }
              pipeline = [];
              pc++;
              break;
            case 'syncpipeline':
              if (!pipeline) throw new ScriptRuntimeError('\\syncpipeline: not in pipeline mode', 'SCRIPT_PIPELINE');
              if (pipeline.length) pipeline[pipeline.length - 1]!.sync = true;
              pc++;
              break;
            case 'endpipeline': {
              if (!pipeline) throw new ScriptRuntimeError('\\endpipeline: not in pipeline mode', 'SCRIPT_PIPELINE');
              const items = pipeline;
              pipeline = null;
              if (items.length) {
                const o = await conn.pipeline(items, protocol);
                status = o.status;
                if (o.error) return { ...o.error, inTransaction: status !== 'I' };
              }
              pc++;
              break;
            }
          }
        }
        if (pipeline) throw new ScriptRuntimeError('end of script reached with pipeline open', 'SCRIPT_PIPELINE');
        if (status !== 'I') throw new ScriptRuntimeError('end of script reached without completing the last transaction', 'SCRIPT_OPEN_TRANSACTION');
        return undefined;
      } catch (e) {
        if (!(e instanceof ScriptRuntimeError)) throw e;
        const line = commands[pc]?.line ?? commands[commands.length - 1]?.line ?? 0;
        return { code: e.label, message: `${file}:${line}: ${e.message}`, inTransaction: status !== 'I' };
      }
    },
  };

  /** Simple protocol: the values written into the text, as pgbench does (a variable not set stays as written). */
  function substitute(sql: SqlCommand): string {
    const n = sql.vars.length;
    if (n === 0) return sql.text;
    let out = sql.parts[0]!;
    for (let k = 0; k < n; k++) {
      const v = vars[sql.vars[k]!];
      out += (v === undefined ? sql.written[k]! : valueString(v)) + sql.parts[k + 1]!;
    }
    return out;
  }

  /** Extended protocols: one parameter per occurrence, as text (null for a variable not set). */
  function params(sql: SqlCommand): (string | null)[] {
    const n = sql.vars.length;
    const out = new Array<string | null>(n);
    for (let k = 0; k < n; k++) {
      const v = vars[sql.vars[k]!];
      out[k] = v === undefined ? null : valueString(v);
    }
    return out;
  }

  /** \gset: the last result must have exactly one row; \aset: every result with rows sets variables. */
  function store(sql: SqlCommand, results: ResultSet[]): void {
    const { prefix, all } = sql.store!;
    if (!all) {
      const last = results[results.length - 1];
      const rows = last?.rows ?? 0;
      if (rows !== 1) {
        throw new ScriptRuntimeError(`\\gset expected one row, got ${rows}`, rows === 0 ? 'SCRIPT_GSET_NO_ROW' : 'SCRIPT_GSET_ROWS');
      }
      last!.fields.forEach((f, k) => put(prefix + f, last!.last![k] ?? ''));
      return;
    }
    for (const r of results) if (r.rows > 0 && r.last) r.fields.forEach((f, k) => put(prefix + f, r.last![k] ?? ''));
  }

  /** A stored column: its name must be a variable name ("?column?" is not), as pgbench requires. */
  function put(name: string, v: string): void {
    if (!VARIABLE_NAME.test(name)) throw new ScriptRuntimeError(`invalid variable name: "${name}" (name the column: SELECT ... AS name)`, 'SCRIPT_GSET_NAME');
    set(name, v); // a variable the script never reads need not be kept
  }

  function sleepMicros(c: Extract<Command, { kind: 'sleep' }>): number {
    if (typeof c.amount === 'number') return c.amount * c.scale;
    const v = vars[c.amount.variable];
    if (v === undefined) throw new ScriptRuntimeError(`sleep: undefined variable "${script.variables[c.amount.variable]}"`, 'SCRIPT_UNDEFINED_VARIABLE');
    const text = valueString(v);
    const m = /^\s*([+-]?\d+)/.exec(text); // atoi
    if (!m && !/^\d/.test(text)) throw new ScriptRuntimeError(`sleep: invalid sleep time "${text}" for variable "${script.variables[c.amount.variable]}"`, 'SCRIPT_TYPE');
    return (m ? Number(m[1]) : 0) * c.scale;
  }

  function shellValue(i: number): string {
    const v = vars[i];
    if (v === undefined) throw new ScriptRuntimeError(`shell: undefined variable "${script.variables[i]}"`, 'SCRIPT_UNDEFINED_VARIABLE');
    return valueString(v);
  }
}

const VARIABLE_NAME = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*$/;

/** Runs a command through /bin/sh, as pgbench's system()/popen() do; \setshell reads an integer from its first line. */
function shell(command: string, read: boolean): Promise<bigint> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', read ? 'pipe' : 'inherit', 'inherit'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', (e) => reject(new ScriptRuntimeError(`shell: could not launch shell command: ${e.message}`, 'SCRIPT_SHELL')));
    child.on('close', (code) => {
      if (!read) {
        if (code !== 0) return reject(new ScriptRuntimeError(`shell: command "${command}" exited with status ${code}`, 'SCRIPT_SHELL'));
        return resolve(0n);
      }
      const first = out.split('\n')[0] ?? '';
      if (!out) return reject(new ScriptRuntimeError(`setshell: could not read result of shell command "${command}"`, 'SCRIPT_SHELL'));
      const line = `${first}${out.includes('\n') ? '\n' : ''}`.slice(0, 63);
      const m = /^\s*([+-]?\d+)\s*$/.exec(line);
      if (!m) return reject(new ScriptRuntimeError(`setshell: shell command must return an integer (not "${line}")`, 'SCRIPT_SHELL'));
      resolve(BigInt.asIntN(32, BigInt(m[1]!))); // pgbench reads it with strtol into an int
    });
  });
}
