import { quoteIdent } from '../pg/index.js';
import type { Db } from './target.js';
import type { TargetColumn } from './import-table.js';

// Staged rows live in pg_temp.prodhome_import (line, end_line, c0 … cN as text); values that do
// not fit their column go to pg_temp.prodhome_bad. Postgres itself judges every value — with the
// column's own input function and type modifier, as COPY would — so no type is second-guessed.

export const STAGE = 'pg_temp.prodhome_import';
export const BAD = 'pg_temp.prodhome_bad';

/** Before 16 there is no pg_input_is_valid: call the type's input function and catch its error. */
const INPUT_ERROR_FN = `create function pg_temp.prodhome_input_error(v text, fn regproc, nargs int, ioparam oid, typmod int) returns text
language plpgsql as $$
begin
  if nargs = 1 then execute format('select %s($1::cstring)', fn) using v;
  elsif nargs = 2 then execute format('select %s($1::cstring, $2)', fn) using v, ioparam;
  else execute format('select %s($1::cstring, $2, $3)', fn) using v, ioparam, typmod;
  end if;
  return null;
exception when others then
  return sqlerrm;
end $$`;

/** Records in BAD each staged value that its column refuses, and each NULL in a NOT NULL column. */
export async function findBadValues(tx: Db, major: number, columns: TargetColumn[]): Promise<void> {
  if (major < 16) await tx.unsafe(INPUT_ERROR_FN);
  for (const [i, col] of columns.entries()) {
    const c = quoteIdent(`c${i}`);
    if (col.notNull) {
      await tx.unsafe(`insert into ${BAD} select line, end_line, $1, null, $2 from ${STAGE} where ${c} is null`, [i, `null value in column ${quoteIdent(col.name)} violates not-null constraint`]);
    }
    if (col.type === 'text') continue;
    if (major >= 16) {
      await tx.unsafe(
        `insert into ${BAD} select line, end_line, $1, ${c}, (pg_input_error_info(${c}, $2)).message from ${STAGE} where ${c} is not null and not pg_input_is_valid(${c}, $2)`,
        [i, col.type],
      );
    } else {
      const [io] = await tx<{ fn: string; nargs: number; ioparam: string }[]>`
        select t.typinput::oid::int8::text as fn, p.pronargs::int as nargs, (case when t.typelem <> 0 then t.typelem else t.oid end)::int8::text as ioparam
        from pg_type t join pg_proc p on p.oid = t.typinput where t.oid = ${col.typid}::oid`;
      await tx.unsafe(
        `insert into ${BAD} select line, end_line, $1, v, m from (
           select line, end_line, ${c} as v, pg_temp.prodhome_input_error(${c}, $2::oid::regproc, $3, $4::oid, $5) as m from ${STAGE} where ${c} is not null) x
         where m is not null`,
        [i, io!.fn, io!.nargs, io!.ioparam, col.typmod],
      );
    }
  }
}

export interface BadValue {
  line: number;
  endLine: number;
  col: number;
  value: string | null;
  message: string;
}

/** How many staged rows are bad, and the first `limit` of them (one problem per row). */
export async function badValues(tx: Db, limit: number): Promise<{ total: number; first: BadValue[] }> {
  const [count] = await tx.unsafe<{ n: number }[]>(`select count(distinct line)::int as n from ${BAD}`);
  const rows = await tx.unsafe(
    `select distinct on (line) line::int8::text as line, end_line::int8::text as "endLine", col, value, message from ${BAD} order by line, col limit $1`,
    [limit],
  );
  return {
    total: count!.n,
    first: rows.map((r) => ({ line: Number(r.line), endLine: Number(r.endLine), col: r.col as number, value: r.value as string | null, message: r.message as string })),
  };
}
