import { UsageError } from './args.js';
import { table } from './format.js';
import type { Output } from './invocation.js';
import { Template, type Row } from './template.js';

/** A listing command's output shape: its fields, their table headers, and the default table. */
export interface ListingShape {
  fields: readonly string[];
  /** `ID` → `IMAGE ID`; fields not named get their name split and upper-cased. */
  headers: Record<string, string>;
  /** The default `table` template's columns. */
  columns: readonly string[];
}

/**
 * Compiles `--format` for a listing before any work is done, so a bad format costs nothing:
 * `table` (default), `json` (one object per line, as docker ≥ 23 prints), or a Go template.
 */
export function listingFormat(format: string | undefined, shape: ListingShape): (out: Output, rows: Row[]) => void {
  if (format === undefined || format === '' || format === 'table') {
    const t = Template.compile(`table ${shape.columns.map((c) => `{{.${c}}}`).join('\t')}`, shape.fields);
    return (out, rows) => printTable(out, t, shape, rows);
  }
  if (format === 'json') return (out, rows) => rows.forEach((r) => out.line(JSON.stringify(r)));
  if (!format.includes('{{') && format.trim() !== 'table') {
    throw new UsageError(`unknown format ${JSON.stringify(format)}: use table, json or a Go template such as '{{.${shape.fields[0]}}}' (fields: ${shape.fields.join(', ')})`);
  }
  const t = Template.compile(format, shape.fields);
  if (t.table) return (out, rows) => printTable(out, t, shape, rows);
  return (out, rows) => rows.forEach((r) => out.line(t.render(r)));
}

/** `--format` for a single object (inspect, info, version): json or a template. */
export function objectFormat(format: string | undefined, fields: readonly string[]): ((row: Row) => string) | undefined {
  if (format === undefined || format === '' || format === 'table') return undefined;
  if (format === 'json') return (row) => JSON.stringify(row);
  if (!format.includes('{{')) {
    throw new UsageError(`unknown format ${JSON.stringify(format)}: use json or a Go template such as '{{.${fields[0]}}}' (fields: ${fields.join(', ')})`);
  }
  const t = Template.compile(format, fields);
  return (row) => t.render(row);
}

function printTable(out: Output, t: Template, shape: ListingShape, rows: Row[]): void {
  const split = (line: string) => line.split('\t');
  const header = split(t.header(shape.headers));
  out.line(table(header, rows.map((r) => split(t.render(r)))));
}
