import { InvalidArgumentError } from '../errors.js';
import { BtrfsSnapshotter } from './btrfs/btrfs.js';
import { ZfsSnapshotter } from './zfs/zfs.js';
import { BlockfileSnapshotter, parseBlockfileOptions } from './blockfile/blockfile.js';
import { NativeSnapshotter } from './native/native.js';
import { kernelHasOverlay } from './overlay/kernel.js';
import { OverlaySnapshotter } from './overlay/overlay.js';
import { FuseOverlayfsSnapshotter } from './fuse-overlayfs/fuse-overlayfs.js';
import { ErofsSnapshotter } from './erofs/erofs.js';
import type { Snapshotter } from './snapshotter.js';
import { ensurePrivateDir } from '../sys/mkdir-all.js';
import { checkLocation } from '../content/location.js';
import { reclaimTemporaries } from './temporaries.js';

export { SNAPSHOTTER_NAMES, type SnapshotterName } from './names.js';
import { SNAPSHOTTER_NAMES, type SnapshotterName } from './names.js';
import { hasSysAdmin, overlayTestMount } from './driver.js';

/**
 * Opens (creating if needed) the snapshotter `name` on `root`, and removes what processes that
 * died left there (temporary snapshots and mounts; see temporaries.ts). That reclaim is best
 * effort: `cleanup()` does it again and reports a failure. A root inside a store's blobs or a
 * snapshot is refused (UnsafeLocationError).
 */
export async function openSnapshotter(name: SnapshotterName, root: string, options: { reclaim?: boolean; storageOpts?: readonly string[] } = {}): Promise<Snapshotter> {
  const snapshotter = await openBackend(name, root, options.storageOpts);
  if (options.reclaim !== false) await reclaimTemporaries(snapshotter).catch(() => {});
  return snapshotter;
}

/** `storageOpts`: the store's storage-opts (`blockfile.size=10G`…); each backend takes its own. */
async function openBackend(name: SnapshotterName, root: string, storageOpts: readonly string[] = []): Promise<Snapshotter> {
  checkLocation(root, 'snapshot root');
  await ensurePrivateDir(root);
  switch (name) {
    case 'overlay':
      return OverlaySnapshotter.open(root);
    case 'fuse-overlayfs':
      return FuseOverlayfsSnapshotter.open(root);
    case 'native':
      return NativeSnapshotter.open(root);
    case 'btrfs':
      return BtrfsSnapshotter.open(root);
    case 'zfs':
      return ZfsSnapshotter.open(root);
    case 'blockfile':
      return BlockfileSnapshotter.open(root, parseBlockfileOptions(storageOpts));
    case 'erofs':
      return ErofsSnapshotter.open(root);
    default:
      throw new InvalidArgumentError(`unknown snapshotter ${JSON.stringify(name)} (${SNAPSHOTTER_NAMES.join(', ')})`);
  }
}

/**
 * overlay when the kernel has it and this process may mount (CAP_SYS_ADMIN), else native. With
 * `probeDir` (a directory on the filesystem the snapshots will live on), a real overlay is
 * mounted there first: an upperdir on some filesystems (overlay itself, some FUSE) is refused.
 */
export async function defaultSnapshotter(probeDir?: string): Promise<SnapshotterName> {
  if (!kernelHasOverlay() || !(await hasSysAdmin())) return 'native';
  if (probeDir === undefined) return 'overlay';
  return (await overlayTestMount(probeDir)) === undefined ? 'overlay' : 'native';
}

export type { Snapshotter, Info, Kind, Mount, Usage, SnapshotOptions, CommitOptions, WalkFunc, SnapshotProblem } from './snapshotter.js';
export { mountAll, unmountAll, isMountPoint } from './mount.js';
export { reclaimTemporaries, OWNER_LABEL, TEMP_MOUNTS_DIR, type ReclaimedTemporaries } from './temporaries.js';
export { OverlaySnapshotter } from './overlay/overlay.js';
export { FuseOverlayfsSnapshotter } from './fuse-overlayfs/fuse-overlayfs.js';
export { NativeSnapshotter } from './native/native.js';
export { BtrfsSnapshotter } from './btrfs/btrfs.js';
export { ZfsSnapshotter } from './zfs/zfs.js';
export { BlockfileSnapshotter, parseBlockfileOptions, type BlockfileOptions } from './blockfile/blockfile.js';
export { ErofsSnapshotter, erofsUnavailable, LAYER_IMAGE } from './erofs/erofs.js';
