import { openEngine, parseCommand, type GlobalFlags } from '../context.js';

export const usage = `Usage: stratum mount [--rw KEY] [--snapshotter NAME] [--store DIR] IMAGE DIR

Mount an image's root filesystem at DIR: a read-only view, or with --rw a writable snapshot KEY
on the image's top layer (commit it later with \`stratum commit KEY NAME\`). Layers not yet
unpacked are unpacked first, on the store's storage driver. The mount is recorded in the store;
undo it with \`stratum unmount DIR\`.`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(argv, { rw: { type: 'string' } });
  if (positionals.length !== 2) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const [ref, target] = positionals as [string, string];
  const engine = await openEngine(values as GlobalFlags);
  try {
    const mounted = await engine.mount(ref, target, values.rw !== undefined ? { rw: values.rw } : {});
    process.stdout.write(`${mounted.target} (${mounted.readonly ? 'read-only view' : 'writable'} ${mounted.key}, ${mounted.snapshotter})\n`);
  } finally {
    await engine.close();
  }
  return 0;
}
