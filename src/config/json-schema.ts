import { labSchema, zod } from './schema.js';

/** JSON Schema of prodhome.yaml, for editor completion (yaml-language-server and friends). */
export function labJsonSchema(): Record<string, unknown> {
  const schema = zod().toJSONSchema(labSchema(), { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { ...schema, title: 'prodhome.yaml', description: 'A prodhome lab: a production-like Postgres estate on one machine.' };
}
