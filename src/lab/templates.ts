import os from 'node:os';
import path from 'node:path';
import { binariesAt, ensureTemplate, listSpares, makeSpares, serverEnv, templateReady, type OsUser } from '../runtime/index.js';
import { SYSTEM_ROOT } from './paths.js';
import type { LabState } from './state.js';

/** Spare copies kept per template: enough for a lab of this many nodes on those binaries. */
const MAX_SPARES = 8;

/**
 * Template clusters (initdb once, copy per node) are shared by every lab of this machine: under
 * /var/lib/prodhome when servers run as the server user, else in the user's cache directory.
 * PRODHOME_TEMPLATES=off makes every node run initdb of its own; PRODHOME_TEMPLATES=/abs/dir
 * keeps them there instead (a bench or a test that must start with none).
 */
export function templateRoot(user: OsUser | undefined): string | undefined {
  const setting = process.env.PRODHOME_TEMPLATES;
  if (setting === 'off') return undefined;
  if (setting && path.isAbsolute(setting)) return setting;
  if (user) return SYSTEM_ROOT;
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'prodhome');
}

/**
 * Run by the agent once the lab is up, off every command's critical path: makes the template
 * clusters this lab's binaries lack (an `up` with templates off, or one whose template failed),
 * then fills each template's spares up to the number of this lab's nodes on those binaries — so
 * the next lab's nodes are claimed by a rename instead of copied while `up` waits. `signal` stops
 * the spares' copying (an agent that stops must not wait for it).
 */
export async function makeTemplates(state: LabState, log: (line: string) => void, signal?: AbortSignal): Promise<void> {
  const root = templateRoot(state.runAs);
  if (!root) return;
  const nodes = new Map<string, number>();
  for (const node of Object.values(state.nodes)) if (node.runtime === 'local') nodes.set(node.binDir, (nodes.get(node.binDir) ?? 0) + 1);
  for (const [binDir, count] of nodes) {
    if (signal?.aborted) return;
    const node = Object.values(state.nodes).find((n) => n.runtime === 'local' && n.binDir === binDir);
    const bins = node?.runtime === 'local' ? binariesAt(binDir, node.binSource) : undefined;
    if (!bins) continue;
    try {
      let template = templateReady(root, bins, state.runAs);
      if (!template) {
        template = await ensureTemplate(root, bins, state.runAs, serverEnv(os.tmpdir()), log);
        log(`template cluster for Postgres ${bins.version} ready: new nodes on these binaries are copies of it`);
      }
      const want = Math.min(count, MAX_SPARES);
      if (listSpares(template).length >= want) continue;
      const made = await makeSpares(template, bins, want, state.runAs, serverEnv(os.tmpdir()), signal);
      if (made) log(`${made} spare cop${made === 1 ? 'y' : 'ies'} of the Postgres ${bins.version} template ready (the next lab's nodes are claimed, not copied)`);
    } catch (e) {
      log(`could not make a template cluster or its spares for Postgres ${bins.version} (new nodes copy or run initdb instead): ${(e as Error).message}`);
    }
  }
}
