import { parseArgs } from 'node:util';
import { findImage, loadImage } from '../../image/image.js';
import { GLOBAL_OPTIONS, openStore, type GlobalFlags } from '../context.js';

export const usage = `Usage: stratum inspect [--store DIR] NAME[:TAG|@DIGEST]

Print an image's index entry, manifest and config as JSON.`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...GLOBAL_OPTIONS } });
  if (positionals.length !== 1) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const store = await openStore(values as GlobalFlags);
  const image = await loadImage(store, await findImage(store, positionals[0]!));
  const out = { name: image.name, descriptor: image.descriptor, manifest: image.manifest, config: image.config };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  return 0;
}
