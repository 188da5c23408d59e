import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type LabConfig } from '../src/config/index.js';
import { labDestroy } from '../src/lab/index.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = path.join(ROOT, 'bin', 'prodhome.js');
export const IS_ROOT = process.getuid?.() === 0;
export const IN_CI = process.env.CI === 'true';

/**
 * The system's pgbench for tests that compare with it (undefined when absent). Absent in CI is an
 * error: CI installs Postgres 15; locally the caller's tests skip, and this says so loudly.
 */
export function requirePgbench(skipping: string): string | undefined {
  const found = ['/usr/lib/postgresql/15/bin/pgbench', spawnSync('sh', ['-c', 'command -v pgbench'], { encoding: 'utf8' }).stdout.trim()].find((p) => p && fs.existsSync(p));
  if (!found) {
    if (IN_CI) throw new Error('CI machines have pgbench (Postgres 15); it was not found');
    console.warn(`\n*** SKIPPING ${skipping}: no pgbench on this machine ***\n`);
  }
  return found;
}

export interface TempLab {
  dir: string;
  file: string;
  config: () => LabConfig;
  cleanup: () => Promise<void>;
}

/**
 * A lab in a fresh temp dir (0755, so an unprivileged server user can reach it) with the given
 * prodhome.yaml. `cleanup` destroys whatever the lab created and removes the dir.
 */
export function tempLab(yaml: string, { mode = 0o755 }: { mode?: number } = {}): TempLab {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-test-'));
  fs.chmodSync(dir, mode);
  const file = path.join(dir, 'prodhome.yaml');
  fs.writeFileSync(file, yaml);
  const config = () => loadConfig({ file });
  return {
    dir,
    file,
    config,
    cleanup: async () => {
      try {
        await labDestroy(config());
      } catch {
        // the config may be deliberately broken; the dir goes anyway
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `prodhome` command, as a user would. */
export function cli(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Polls `check` until it returns a truthy value or `ms` pass. */
export async function waitFor<T>(check: () => T | Promise<T>, ms = 10_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The real uid a process runs as, from /proc. */
export function processUid(pid: number): number {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'))!;
  return Number(line.split(/\s+/)[1]);
}

/** Ports for one test file: each file gets its own range so leftovers never collide. */
export function portRange(base: number): string {
  return `ports:\n  from: ${base}\n  to: ${base + 49}\n`;
}
