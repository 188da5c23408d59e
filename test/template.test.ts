import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, nodeConnection, readSecrets, readState, templateRoot } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { resolveBinaries, serverUser } from '../src/runtime/index.js';
import { templateDir } from '../src/runtime/template.js';
import { portRange, tempLab, waitFor, type TempLab } from './helpers.js';

// New nodes are copies of a template cluster (initdb once per set of binaries); each copy must
// still be a node of its own: its own password, set without leaving a trace.
describe('template clusters', () => {
  let lab: TempLab;
  beforeAll(async () => {
    lab = tempLab(`lab: tpl\n${portRange(57300)}nodes:\n  a: { role: standalone }\n  b: { role: standalone }\n`);
    await labUp(lab.config());
  });
  afterAll(() => lab.cleanup());

  it('the agent makes the template for these binaries once the first lab is up (its nodes ran initdb), outside every lab', async () => {
    const config = lab.config();
    const bins = resolveBinaries({ labBinDir: config.postgres.binDir }, 'a');
    const node = readState(config.stateDir)!.nodes.a!;
    const user = serverUser(config.runAs);
    const dir = templateDir(templateRoot(user)!, { ...bins, binDir: node.runtime === 'local' ? node.binDir : bins.binDir }, user);
    await waitFor(() => fs.existsSync(path.join(dir, 'data', 'PG_VERSION')), 60_000, 'the agent to make the template');
    expect(dir.startsWith(config.stateDir)).toBe(false);
  });

  it('each copy answers only to its own password, stored as its own SCRAM verifier', async () => {
    const config = lab.config();
    const state = readState(config.stateDir)!;
    const secrets = readSecrets(config.stateDir);
    const info = (name: 'a' | 'b', password: string) => {
      const n = state.nodes[name]!;
      return { host: '127.0.0.1', port: n.runtime === 'local' ? n.port : 0, user: 'postgres', password, database: 'postgres' };
    };
    const [pa, pb] = [secrets.nodes.a!.password, secrets.nodes.b!.password];
    expect(pa).not.toBe(pb);
    const verifier = async (name: 'a' | 'b', pw: string) =>
      withConnection(info(name, pw), async (sql) => (await sql<{ v: string }[]>`select rolpassword as v from pg_authid where rolname = 'postgres'`)[0]!.v);
    const [va, vb] = [await verifier('a', pa), await verifier('b', pb)];
    expect(va).toMatch(/^SCRAM-SHA-256\$4096:/);
    expect(va).not.toBe(vb);
    // b's password does not open a, nor a's b
    await expect(withConnection(info('a', pb), (sql) => sql`select 1`)).rejects.toThrow(/password authentication failed/);
    await expect(withConnection(info('b', pa), (sql) => sql`select 1`)).rejects.toThrow(/password authentication failed/);
  });

  it("no node's log holds its password or its verifier", async () => {
    const config = lab.config();
    const state = readState(config.stateDir)!;
    const secrets = readSecrets(config.stateDir);
    for (const name of ['a', 'b'] as const) {
      const n = state.nodes[name]!;
      if (n.runtime !== 'local') throw new Error('expected local nodes');
      const log = fs.readFileSync(n.logFile, 'utf8');
      expect(log).not.toContain(secrets.nodes[name]!.password);
      expect(log).not.toContain('SCRAM-SHA-256$');
    }
  });

  it('a later lab on the same binaries copies the template: its nodes have no initdb of their own', async () => {
    const second = tempLab(`lab: tpl2\n${portRange(57350)}nodes:\n  c: { role: standalone }\n`);
    try {
      const r = await labUp(second.config(), () => {});
      expect(r.nodes.map((n) => n.action)).toEqual(['created']);
      // Every copy shares the template's system identifier (initdb would give each its own).
      const sysid = async (cfg: ReturnType<TempLab['config']>, node: string) =>
        withConnection(nodeConnection(cfg, node), async (sql) => (await sql<{ id: string }[]>`select system_identifier::text as id from pg_control_system()`)[0]!.id);
      const third = tempLab(`lab: tpl3\n${portRange(57360)}nodes:\n  d: { role: standalone }\n`);
      try {
        await labUp(third.config(), () => {});
        expect(await sysid(second.config(), 'c')).toBe(await sysid(third.config(), 'd'));
      } finally {
        await third.cleanup();
      }
    } finally {
      await second.cleanup();
    }
  });
});
