import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, nodeConnection, readSecrets, readState, templateRoot } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { resolveBinaries, serverUser } from '../src/runtime/index.js';
import { listSpares, sparesDir, templateDir } from '../src/runtime/template.js';
import { portRange, tempLab, waitFor, type TempLab } from './helpers.js';

// New nodes are copies of a template cluster (initdb once per set of binaries); each copy must
// still be a node of its own: its own password, set without leaving a trace. These labs keep
// their templates in a directory of this file's own (PRODHOME_TEMPLATES), so the first lab
// here is the first ever on these binaries whatever other labs of the machine made.
describe('template clusters', () => {
  let lab: TempLab;
  let root: string;
  const before = process.env.PRODHOME_TEMPLATES;
  const sysid = async (config: ReturnType<TempLab['config']>, node: string) =>
    withConnection(nodeConnection(config, node), async (sql) => (await sql<{ id: string }[]>`select system_identifier::text as id from pg_control_system()`)[0]!.id);
  const verifier = async (config: ReturnType<TempLab['config']>, node: string) =>
    withConnection(nodeConnection(config, node), async (sql) => (await sql<{ v: string }[]>`select rolpassword as v from pg_authid where rolname = 'postgres'`)[0]!.v);
  /** The template's data dir for `config`'s binaries (the lab's nodes record them). */
  const template = (config: ReturnType<TempLab['config']>) => {
    const bins = resolveBinaries({ labBinDir: config.postgres.binDir }, 'a');
    const node = Object.values(readState(config.stateDir)!.nodes)[0]!;
    const user = serverUser(config.runAs);
    return path.join(templateDir(templateRoot(user)!, { ...bins, binDir: node.runtime === 'local' ? node.binDir : bins.binDir }, user), 'data');
  };

  beforeAll(async () => {
    // 0755: the server user (when tests run as root) reads the template and writes spares here.
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-templates-'));
    fs.chmodSync(root, 0o755);
    process.env.PRODHOME_TEMPLATES = root;
    lab = tempLab(`lab: tpl\n${portRange(57300)}nodes:\n  a: { role: standalone }\n  b: { role: standalone }\n`);
    await labUp(lab.config());
  });
  afterAll(async () => {
    await lab.cleanup();
    if (before === undefined) delete process.env.PRODHOME_TEMPLATES;
    else process.env.PRODHOME_TEMPLATES = before;
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('the first lab on these binaries makes the template itself (one initdb), outside the lab, and its nodes are copies of it', async () => {
    const config = lab.config();
    const data = template(config);
    expect(fs.existsSync(path.join(data, 'PG_VERSION'))).toBe(true);
    expect(data.startsWith(root)).toBe(true);
    // Copies share the template's system identifier (initdb would give each node its own).
    expect(await sysid(config, 'a')).toBe(await sysid(config, 'b'));
  });

  it('the template keeps no WAL it does not use: the unused tail of its segment is a hole', () => {
    const wal = path.join(template(lab.config()), 'pg_wal');
    const segment = fs.readdirSync(wal).find((f) => /^[0-9A-F]{24}$/.test(f))!;
    const st = fs.statSync(path.join(wal, segment));
    expect(st.size).toBe(16 * 1024 * 1024);
    expect(st.blocks * 512).toBeLessThan(st.size / 2);
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
    const [va, vb] = [await verifier(config, 'a'), await verifier(config, 'b')];
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

  it("the lab's agent keeps spare copies ready; a later lab claims them, and every node still gets its own password, kept in no template or spare", async () => {
    const config = lab.config();
    const data = template(config);
    // As many spares as the lab that made them has nodes on these binaries.
    await waitFor(() => listSpares(data).length === 2, 120_000, 'the agent to make 2 spare copies');
    const spares = listSpares(data);
    const second = tempLab(`lab: tpl2\n${portRange(57350)}nodes:\n  c: { role: standalone }\n`);
    try {
      const r = await labUp(second.config(), () => {});
      expect(r.nodes.map((n) => n.action)).toEqual(['created']);
      // c is one of the spares (renamed into the lab, not copied): that spare is gone for good.
      expect(spares.filter((id) => !fs.existsSync(path.join(sparesDir(data), id)))).toHaveLength(1);
      expect(await sysid(second.config(), 'c')).toBe(await sysid(config, 'a'));
      // Its own password, different from every node of the first lab.
      const pc = readSecrets(second.config().stateDir).nodes.c!.password;
      const secrets = readSecrets(config.stateDir);
      expect([secrets.nodes.a!.password, secrets.nodes.b!.password]).not.toContain(pc);
      const verifiers = [await verifier(config, 'a'), await verifier(config, 'b'), await verifier(second.config(), 'c')];
      expect(new Set(verifiers).size).toBe(3);
      // No lab password nor verifier in any file of the template or its spares.
      const secretsOf = [secrets.nodes.a!.password, secrets.nodes.b!.password, pc, ...verifiers];
      for (const file of filesUnder(path.dirname(data)).concat(filesUnder(sparesDir(data)))) {
        let bytes: Buffer;
        try {
          bytes = fs.readFileSync(file);
        } catch {
          continue; // a spare the second lab's agent is making meanwhile
        }
        for (const s of secretsOf) expect(bytes.includes(s), `${file} holds a lab secret`).toBe(false);
      }
    } finally {
      await second.cleanup();
    }
  });
});

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}
