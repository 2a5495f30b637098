import type { MigrateEvent } from '../../engine/migrate.js';
import { UsageError, withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';

/** One line per step: what moved, how it was verified, the switch, what was removed. */
function describe(e: MigrateEvent): string {
  switch (e.type) {
    case 'start':
      return `${e.resumed ? 'Resuming the migration' : 'Migrating'} of ${e.images} image${e.images === 1 ? '' : 's'} from ${e.from} to ${e.to}`;
    case 'image': {
      const how = e.comparedWith === 'old-driver' ? `tree of ${e.entries} entries identical to the old driver's` : `${e.entries} entries, layers checked against their digests (not unpacked before)`;
      return `[${e.index}/${e.total}] ${e.name}: ${e.resumed ? 'verified earlier' : how}`;
    }
    case 'switched':
      return `The store now uses the ${e.to} storage driver`;
    case 'removed':
      return `Removed ${e.snapshots} ${e.driver} snapshot${e.snapshots === 1 ? '' : 's'}${e.kept.length > 0 ? `; kept in ${e.driver}: ${e.kept.join(', ')}` : ''}`;
  }
}

export async function run(inv: Invocation): Promise<number> {
  const to = inv.string('to');
  if (to === undefined || to === '') throw new UsageError('migrate needs --to DRIVER (overlay, fuse-overlayfs, native, btrfs, zfs, blockfile, erofs)');
  const json = inv.bool('json');
  const storageOpts = inv.globals['storage-opt'];
  // The store's driver is read, not chosen: --storage-opt here is the new driver's, not a new store's.
  const globals = { ...inv.globals, 'storage-opt': undefined };
  await withEngine(globals, (engine) =>
    engine.migrate({
      to,
      ...(storageOpts !== undefined ? { storageOpts } : {}),
      force: inv.bool('force'),
      onProgress: (e) => inv.stdout.line(json ? JSON.stringify(e) : describe(e)),
    }),
  );
  return 0;
}
