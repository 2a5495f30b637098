import { openEngine, parseCommand, type GlobalFlags } from '../context.js';

export const usage = `Usage: stratum unmount [--store DIR] DIR

Unmount what \`stratum mount\` (or \`snapshot prepare|view --target\`) mounted at DIR: a read-only
view made for the mount is removed, a writable snapshot kept. A path stratum did not mount is
refused and left as it is.`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(argv, {});
  if (positionals.length !== 1) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const engine = await openEngine(values as GlobalFlags);
  try {
    const { record, removedSnapshot, wasMounted } = await engine.unmount(positionals[0]!);
    const what = removedSnapshot ? `, view ${record.key} removed` : `, snapshot ${record.key} kept`;
    process.stdout.write(`${wasMounted ? 'unmounted' : 'forgot (it was no longer mounted)'} ${record.target}${what}\n`);
  } finally {
    await engine.close();
  }
  return 0;
}
