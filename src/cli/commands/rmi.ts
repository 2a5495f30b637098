import { parseArgs } from 'node:util';
import { parseReference } from '../../oci/reference.js';
import { NotFoundError } from '../../errors.js';
import { GLOBAL_OPTIONS, openStore, type GlobalFlags } from '../context.js';

export const usage = `Usage: stratum rmi [--store DIR] NAME[:TAG|@DIGEST]...

Remove image tags from the store; run \`stratum gc\` to free their blobs.`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...GLOBAL_OPTIONS } });
  if (positionals.length === 0) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const store = await openStore(values as GlobalFlags);
  for (const input of positionals) {
    const name = parseReference(input).toString();
    if (!(await store.removeTag(name))) throw new NotFoundError(`image ${input} not found in the store (looked for ${name})`);
    process.stdout.write(`Untagged: ${name}\n`);
  }
  return 0;
}
