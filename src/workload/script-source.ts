import { ProdhomeError } from '../errors.js';
import { ScriptRuntimeError, type Random } from './random.js';
import type { Script } from './script.js';
import type { Step, TransactionSource } from './types.js';

/** Runs a parsed script for one client: each call evaluates its \set and \sleep and yields the steps. */
export function scriptSource(script: Script, initial: Record<string, number>, random: Random): TransactionSource {
  const vars = new Float64Array(script.variables.length);
  script.variables.forEach((v, i) => {
    vars[i] = initial[v.name] ?? 0;
  });
  const commands = script.commands;
  return {
    next(): Step[] {
      const steps: Step[] = [];
      for (const c of commands) {
        try {
          if (c.kind === 'set') vars[c.target] = c.expr.eval(vars, random);
          else if (c.kind === 'sleep') steps.push({ sleepMicros: c.micros.eval(vars, random) });
          else steps.push({ statement: c.statement, values: c.params.map((p) => vars[p]!) });
        } catch (e) {
          if (e instanceof ScriptRuntimeError) throw new ProdhomeError('SCRIPT_RUNTIME', `${script.file}:${c.line}: ${e.message}`);
          throw e;
        }
      }
      return steps;
    },
  };
}
