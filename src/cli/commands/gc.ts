import { parseArgs } from 'node:util';
import { collectGarbage } from '../../oci/gc.js';
import { reclaimTemporaries } from '../../snapshotter/temporaries.js';
import { GLOBAL_OPTIONS, openExistingSnapshotters, openStore, type GlobalFlags } from '../context.js';
import { humanSize } from '../format.js';

export const usage = `Usage: stratum gc [--dry-run] [--store DIR]

Delete blobs no tagged image needs, and stale partial downloads. Also removes what killed
stratum processes left in the snapshotters: temporary snapshots (extract-*, commit-view-*)
and the mounts they made (never a mount stratum did not record).`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...GLOBAL_OPTIONS, 'dry-run': { type: 'boolean' } } });
  const flags = values as GlobalFlags;
  const dryRun = values['dry-run'] === true;
  const store = await openStore(flags);
  if (!dryRun) {
    for (const snapshotter of await openExistingSnapshotters(store, flags)) {
      try {
        const reclaimed = await reclaimTemporaries(snapshotter);
        for (const m of reclaimed.mounts) process.stdout.write(`unmounted ${m} (left by a dead process)\n`);
        for (const key of reclaimed.snapshots) process.stdout.write(`removed snapshot ${key} (left by a dead process)\n`);
      } finally {
        await snapshotter.close();
      }
    }
  }
  const result = await collectGarbage(store, { dryRun });
  for (const blob of result.removed) process.stdout.write(`${dryRun ? 'would remove' : 'removed'} ${blob.digest}\n`);
  process.stdout.write(`${dryRun ? 'Would reclaim' : 'Total reclaimed space'}: ${humanSize(result.bytesFreed, 4)}\n`);
  return 0;
}
