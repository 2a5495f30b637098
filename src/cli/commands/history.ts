import { shortDigest } from '../../oci/digest.js';
import { parseCommand, withEngine, type GlobalFlags } from '../context.js';
import { ellipsis, humanSize, table, timeAgo } from '../format.js';

export const usage = `Usage: stratum history [--no-trunc] [--format table|json] [--store DIR] NAME[:TAG|@DIGEST]

Show the steps an image was built from, newest first, with the layer each produced.`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(argv, { 'no-trunc': { type: 'boolean' }, format: { type: 'string', default: 'table' }, human: { type: 'boolean', short: 'H', default: true } });
  if (positionals.length !== 1) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const rows = await withEngine(values as GlobalFlags, (engine) => engine.history(positionals[0]!));
  if (values.format === 'json') {
    const out = rows.map((r) => ({
      layer: r.layer?.digest ?? null,
      created: r.created ?? null,
      createdBy: r.createdBy,
      size: r.size,
      comment: r.comment,
      emptyLayer: r.emptyLayer,
    }));
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }
  const trunc = !values['no-trunc'];
  const body = rows.map((r) => [
    r.layer ? (trunc ? shortDigest(r.layer.digest) : r.layer.digest) : '<missing>',
    timeAgo(r.created),
    trunc ? ellipsis(r.createdBy.replace(/\t/g, ' '), 45) : r.createdBy,
    humanSize(r.size),
    r.comment,
  ]);
  process.stdout.write(table(['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'], body) + '\n');
  return 0;
}
