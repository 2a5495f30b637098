import { parseCommand, withEngine, type GlobalFlags } from '../context.js';

export const usage = `Usage: stratum rmi [-f] [--store DIR] IMAGE...

Remove image tags from the store: a tag removes that tag, an image ID (or a prefix of it, as
\`images\` prints it) every tag of that image (-f when there are several). Run \`stratum gc\` to
free their blobs and unpacked snapshots.`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(argv, { force: { type: 'boolean', short: 'f' } });
  if (positionals.length === 0) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  await withEngine(values as GlobalFlags, async (engine) => {
    for (const input of positionals) {
      for (const name of await engine.removeImage(input, { force: values.force === true })) process.stdout.write(`Untagged: ${name}\n`);
    }
  });
  return 0;
}
