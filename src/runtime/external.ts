import type { NodeSpec } from '../config/index.js';
import { ProdhomeError, messageOf } from '../errors.js';
import { connectionUrl, parseConnectionUrl, serverVersion, withConnection } from '../pg/index.js';
import type { NodeInspection, NodeRuntime, NodeState, UpOutcome } from './types.js';

/**
 * An existing server given by URL. prodhome connects to it and that is all: it is never
 * initialised, started, stopped or deleted. Its password comes from the URL or PGPASSWORD.
 */
export const externalRuntime: NodeRuntime = {
  kind: 'external',

  async up(spec: NodeSpec): Promise<UpOutcome> {
    const connection = parseConnectionUrl(spec.url!);
    let v: { version: string; major: number };
    try {
      v = await withConnection(connection, serverVersion);
    } catch (e) {
      throw new ProdhomeError('EXTERNAL_UNREACHABLE', `${spec.name}: cannot connect to ${connectionUrl(connection)}: ${messageOf(e)}`, {
        hint: `Check the server is running and the url: of node ${spec.name} (a password goes in the URL or PGPASSWORD).`,
      });
    }
    return {
      state: { runtime: 'external', url: connectionUrl(connection), version: v.version, major: v.major },
      action: 'checked (external: left as it is)',
      connection,
      undo: async () => {},
    };
  },

  async down() {
    return { result: 'left alone' as const };
  },

  async inspect(_name: string, state: NodeState, password?: string): Promise<NodeInspection> {
    if (state.runtime !== 'external') throw new Error('externalRuntime.inspect given a local node');
    const connection = { ...parseConnectionUrl(state.url), ...(password ? { password } : {}) };
    const address = `${connection.host}:${connection.port}`;
    try {
      const v = await withConnection(connection, serverVersion);
      return { condition: 'reachable', version: v.version, address, caps: '-' };
    } catch {
      return { condition: 'unreachable', version: state.version, address, caps: '-' };
    }
  },

  async remove() {
    // Never: prodhome did not create it.
  },
};
