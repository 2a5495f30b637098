import { parseArgs } from 'node:util';
import { loadImageByName } from '../../image/image.js';
import { mountImage } from '../../image/rootfs.js';
import { GLOBAL_OPTIONS, openImageSnapshotter, openStore, type GlobalFlags } from '../context.js';

export const usage = `Usage: stratum mount [--rw KEY] [--snapshotter NAME] [--store DIR] NAME[:TAG|@DIGEST] DIR

Mount an image's root filesystem at DIR: a read-only view, or with --rw a writable snapshot KEY
on the image's top layer (commit it later with \`stratum snapshot commit\`). Layers not yet
unpacked are unpacked first. Undo with \`stratum unmount DIR\`.`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...GLOBAL_OPTIONS, rw: { type: 'string' } } });
  if (positionals.length !== 2) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const [ref, target] = positionals as [string, string];
  const store = await openStore(values as GlobalFlags);
  const image = await loadImageByName(store, ref);
  const snapshotter = await openImageSnapshotter(values as GlobalFlags, store);
  try {
    const mounted = await mountImage(store, snapshotter, image, target, values.rw !== undefined ? { rwKey: values.rw } : {});
    process.stdout.write(`${mounted.target} (${mounted.readonly ? 'read-only view' : 'writable'} ${mounted.key}, ${snapshotter.name})\n`);
  } finally {
    await snapshotter.close();
  }
  return 0;
}
