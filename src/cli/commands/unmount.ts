import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { unmountImage } from '../../image/rootfs.js';
import { openSnapshotter, type SnapshotterName } from '../../snapshotter/index.js';
import type { Snapshotter } from '../../snapshotter/snapshotter.js';
import { GLOBAL_OPTIONS, openImageSnapshotter, openStore, type GlobalFlags } from '../context.js';

export const usage = `Usage: stratum unmount [--store DIR] DIR

Unmount what \`stratum mount\` mounted at DIR; a read-only view is removed, a writable snapshot kept.`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...GLOBAL_OPTIONS } });
  if (positionals.length !== 1) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const flags = values as GlobalFlags;
  const store = await openStore(flags);
  // The snapshot behind the mount may belong to any snapshotter of this store.
  const snapshotters: Snapshotter[] = [];
  if (flags.snapshotter || flags['snapshot-root']) snapshotters.push(await openImageSnapshotter(flags, store));
  else {
    const names = await readdir(join(store.root, 'snapshots')).catch(() => [] as string[]);
    for (const name of names) snapshotters.push(await openSnapshotter(name as SnapshotterName, join(store.root, 'snapshots', name)));
  }
  try {
    const result = await unmountImage(snapshotters, positionals[0]!);
    const what = result.key ? (result.removed ? `, view ${result.key} removed` : `, snapshot ${result.key} kept`) : '';
    process.stdout.write(`unmounted ${positionals[0]}${what}\n`);
  } finally {
    for (const s of snapshotters) await s.close();
  }
  return 0;
}
