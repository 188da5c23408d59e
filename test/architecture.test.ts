import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

/**
 * The rules docs/architecture.md states about src/, checked on the source itself: a part is
 * reached only through its index.ts, the parts' arrows form no cycle, and no module imports
 * itself back through others (type-only imports aside: they vanish at run time).
 */

const SRC = path.join(ROOT, 'src');

interface Module {
  file: string; // relative to src/, e.g. lab/agent.ts
  part: string; // first folder, or '' for a top-level file such as errors.ts
  imports: { target: string; typeOnly: boolean }[];
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

const IMPORT = /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?'(\.{1,2}\/[^']+)'/g;
const DYNAMIC = /import\(\s*'(\.{1,2}\/[^']+)'\s*\)/g;

function modules(): Map<string, Module> {
  const out = new Map<string, Module>();
  for (const abs of sourceFiles(SRC)) {
    const file = path.relative(SRC, abs);
    const text = fs.readFileSync(abs, 'utf8');
    const resolve = (spec: string) => path.relative(SRC, path.resolve(path.dirname(abs), spec.replace(/\.js$/, '.ts')));
    const imports = [
      ...[...text.matchAll(IMPORT)].map((m) => ({ target: resolve(m[3]!), typeOnly: Boolean(m[2]) })),
      ...[...text.matchAll(DYNAMIC)].map((m) => ({ target: resolve(m[1]!), typeOnly: false })),
    ];
    out.set(file, { file, part: file.includes(path.sep) ? file.split(path.sep)[0]! : '', imports });
  }
  return out;
}

/** Every cycle's members (strongly connected components of more than one node, or self-loops). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || graph.get(v)?.has(v)) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return found;
}

describe('architecture: the shape docs/architecture.md describes', () => {
  const mods = modules();

  it('finds the source and its imports (the checks below would pass vacuously otherwise)', () => {
    expect(mods.size).toBeGreaterThan(50);
    expect(mods.get(path.join('lab', 'lifecycle.ts'))!.imports.some((i) => i.target === path.join('runtime', 'index.ts'))).toBe(true);
  });

  it('a part is imported by other parts only through its index.ts', () => {
    const offenders: string[] = [];
    for (const m of mods.values()) {
      for (const i of m.imports) {
        const part = i.target.includes(path.sep) ? i.target.split(path.sep)[0]! : '';
        if (part === m.part || part === '') continue; // within the part, or a top-level file (errors.ts)
        if (i.target !== path.join(part, 'index.ts')) offenders.push(`${m.file} imports ${i.target}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('no module imports itself back through others (value imports)', () => {
    const graph = new Map([...mods.values()].map((m) => [m.file, new Set(m.imports.filter((i) => !i.typeOnly).map((i) => i.target))]));
    expect(cycles(graph)).toEqual([]);
  });

  it("the parts' arrows form no cycle", () => {
    const graph = new Map<string, Set<string>>();
    for (const m of mods.values()) {
      if (!m.part) continue;
      const to = graph.get(m.part) ?? new Set<string>();
      for (const i of m.imports) {
        const part = i.target.includes(path.sep) ? i.target.split(path.sep)[0]! : '';
        if (part && part !== m.part && !i.typeOnly) to.add(part);
      }
      graph.set(m.part, to);
    }
    expect(cycles(graph)).toEqual([]);
  });
});

describe('the CLI command table', () => {
  it("names exactly the commands each group file registers (a command missing from it would load every group; one it names wrongly, none)", async () => {
    const { Command } = await import('commander');
    const { COMMAND_GROUPS } = await import('../src/cli/main.js');
    for (const group of COMMAND_GROUPS) {
      const program = new Command('prodhome');
      (await group.load())(program);
      expect(program.commands.map((c) => c.name()).sort()).toEqual([...group.commands].sort());
    }
  });

  it('finds the command after program options, and loads only its group', async () => {
    const { buildProgram, commandOf } = await import('../src/cli/main.js');
    expect(commandOf(['-f', 'lab.yaml', '--debug', 'status', '--json'])).toBe('status');
    expect(commandOf(['--file', 'up', 'down'])).toBe('down'); // "up" is the file's name here
    expect(commandOf(['--version'])).toBeUndefined();
    expect((await buildProgram(['status'])).commands.map((c) => c.name())).toEqual(['up', 'stop', 'start', 'restart', 'status', 'down', 'destroy']);
    expect((await buildProgram(['--version'])).commands).toEqual([]);
    expect((await buildProgram(['nosuch'])).commands.length).toBeGreaterThan(20);
  });
});
