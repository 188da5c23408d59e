import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, readSecrets, readState, templateRoot } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { resolveBinaries, serverUser } from '../src/runtime/index.js';
import { templateDir } from '../src/runtime/template.js';
import { portRange, tempLab, type TempLab } from './helpers.js';

// New nodes are copies of a template cluster (initdb once per set of binaries); each copy must
// still be a node of its own: its own password, set without leaving a trace.
describe('template clusters', () => {
  let lab: TempLab;
  beforeAll(async () => {
    lab = tempLab(`lab: tpl\n${portRange(57300)}nodes:\n  a: { role: standalone }\n  b: { role: standalone }\n`);
    await labUp(lab.config());
  });
  afterAll(() => lab.cleanup());

  it('the template for these binaries exists once the first lab is up, outside every lab', () => {
    const config = lab.config();
    const bins = resolveBinaries({ labBinDir: config.postgres.binDir }, 'a');
    const node = readState(config.stateDir)!.nodes.a!;
    const user = serverUser(config.runAs);
    const dir = templateDir(templateRoot(user)!, { ...bins, binDir: node.runtime === 'local' ? node.binDir : bins.binDir }, user);
    expect(fs.existsSync(path.join(dir, 'data', 'PG_VERSION'))).toBe(true);
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
});
