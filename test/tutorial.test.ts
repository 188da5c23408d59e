import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findPsql } from '../src/runtime/index.js';
import { CLI, IN_CI, ROOT } from './helpers.js';

// docs/tutorial.md promises every block is pasteable: run them all, in order, as a reader would.
const psql = findPsql();
if (!psql && !IN_CI) console.warn('\n*** SKIPPING the tutorial test: it needs psql, which is not installed here ***\n');

describe.runIf(psql || IN_CI)('docs/tutorial.md', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-tutorial-test-'));
  fs.chmodSync(work, 0o755);
  afterAll(() => {
    if (fs.existsSync(path.join(work, 'tutorial'))) spawnSync(process.execPath, [CLI, 'destroy', '--yes'], { cwd: path.join(work, 'tutorial') });
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('runs from top to bottom and shows the rows moving through the filter', () => {
    const text = fs.readFileSync(path.join(ROOT, 'docs', 'tutorial.md'), 'utf8');
    const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBeGreaterThanOrEqual(8);
    // Run as printed, with two places moved: the reader's clone is this checkout, and the
    // tutorial's directory is in our temp dir. `npm link` links into a temp prefix (npm's own
    // setting), so the test leaves the machine's global packages alone.
    const prefix = path.join(work, 'npm-global');
    const script = [
      'set -euo pipefail',
      `export NPM_CONFIG_PREFIX="${prefix}" PATH="${prefix}/bin:$PATH"`,
      ...(psql ? [`export PATH="$PATH:${path.dirname(psql)}"`] : []),
      ...blocks.map((b) => b.replaceAll('~/prodhome', ROOT).replaceAll('/tmp/prodhome-tutorial', path.join(work, 'tutorial'))),
    ].join('\n');
    expect(script).not.toContain('npx');
    const r = spawnSync('bash', ['-c', script], { cwd: work, encoding: 'utf8', timeout: 180_000 });
    expect(r.stdout).toMatch(/^0\.1\.0$/m); // prodhome --version, from the linked command
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^replica\n/m);
    expect(r.stdout).toMatch(/^logical$/m);
    expect(r.stdout).toContain('1|The Five Dysfunctions of a Team\n3|Turn the Ship Around!\n');
    expect(r.stdout).toContain('3|Turn the Ship Around!\n4|The Art of PostgreSQL\n6|Leaders Eat Last\n');
    expect(r.stdout).toMatch(/leadership_sub +\| streaming/);
    expect(r.stdout).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=\S+$/m); // the dashboard's address
    expect(r.stdout).toMatch(/^tps = \d/m); // the load ran
    expect(r.stdout + r.stderr).not.toMatch(/password=\w/);
    expect(fs.existsSync(path.join(work, 'tutorial'))).toBe(false);
  }, 200_000);
});
