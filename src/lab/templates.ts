import os from 'node:os';
import path from 'node:path';
import { binariesAt, ensureTemplate, serverEnv, templateReady, type OsUser } from '../runtime/index.js';
import { SYSTEM_ROOT } from './paths.js';
import type { LabState } from './state.js';

/**
 * Template clusters (initdb once, copy per node) are shared by every lab of this machine: under
 * /var/lib/prodhome when servers run as the server user, else in the user's cache directory.
 * PRODHOME_TEMPLATES=off makes every node run initdb of its own.
 */
export function templateRoot(user: OsUser | undefined): string | undefined {
  if (process.env.PRODHOME_TEMPLATES === 'off') return undefined;
  if (user) return SYSTEM_ROOT;
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'prodhome');
}

/**
 * Makes the template clusters this lab's binaries lack — run by the agent once the lab is up, so
 * the initdb it costs is off every command's critical path; the next lab's nodes are copies.
 */
export async function makeTemplates(state: LabState, log: (line: string) => void): Promise<void> {
  const root = templateRoot(state.runAs);
  if (!root) return;
  const seen = new Set<string>();
  for (const node of Object.values(state.nodes)) {
    if (node.runtime !== 'local' || seen.has(node.binDir)) continue;
    seen.add(node.binDir);
    const bins = binariesAt(node.binDir, node.binSource);
    if (!bins || templateReady(root, bins, state.runAs)) continue;
    try {
      await ensureTemplate(root, bins, state.runAs, serverEnv(os.tmpdir()), log);
      log(`template cluster for Postgres ${bins.version} ready: new nodes on these binaries are copies of it`);
    } catch (e) {
      log(`could not make a template cluster for Postgres ${bins.version} (new nodes run initdb instead): ${(e as Error).message}`);
    }
  }
}
