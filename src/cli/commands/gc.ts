import { parseArgs } from 'node:util';
import { collectGarbage } from '../../oci/gc.js';
import { GLOBAL_OPTIONS, openStore, type GlobalFlags } from '../context.js';
import { humanSize } from '../format.js';

export const usage = `Usage: stratum gc [--dry-run] [--store DIR]

Delete blobs no tagged image needs, and stale partial downloads.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...GLOBAL_OPTIONS, 'dry-run': { type: 'boolean' } } });
  const store = await openStore(values as GlobalFlags);
  const result = await collectGarbage(store, { dryRun: values['dry-run'] === true });
  for (const blob of result.removed) process.stdout.write(`${values['dry-run'] ? 'would remove' : 'removed'} ${blob.digest}\n`);
  process.stdout.write(`${values['dry-run'] ? 'Would reclaim' : 'Total reclaimed space'}: ${humanSize(result.bytesFreed, 4)}\n`);
  return 0;
}
