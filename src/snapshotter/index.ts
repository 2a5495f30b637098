import { InvalidArgumentError } from '../errors.js';
import { BtrfsSnapshotter, parseBtrfsOptions } from './btrfs/btrfs.js';
import { ZfsSnapshotter, parseZfsOptions } from './zfs/zfs.js';
import { BlockfileSnapshotter, parseBlockfileOptions } from './blockfile/blockfile.js';
import { NativeSnapshotter, parseNativeOptions } from './native/native.js';
import { optionsFor, splitStorageOpt, unknownOption } from './storage-opts.js';
import { kernelHasOverlay } from './overlay/kernel.js';
import { OverlaySnapshotter, parseOverlayOptions } from './overlay/overlay.js';
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
      return OverlaySnapshotter.open(root, parseOverlayOptions(storageOpts));
    case 'fuse-overlayfs':
      return FuseOverlayfsSnapshotter.open(root);
    case 'native':
      return NativeSnapshotter.open(root, parseNativeOptions(storageOpts));
    case 'btrfs':
      return BtrfsSnapshotter.open(root, parseBtrfsOptions(storageOpts));
    case 'zfs':
      return ZfsSnapshotter.open(root, parseZfsOptions(storageOpts));
    case 'blockfile':
      return BlockfileSnapshotter.open(root, parseBlockfileOptions(storageOpts));
    case 'erofs':
      return ErofsSnapshotter.open(root);
    default:
      throw new InvalidArgumentError(`unknown snapshotter ${JSON.stringify(name)} (${SNAPSHOTTER_NAMES.join(', ')})`);
  }
}

/** Each backend's parser of its storage options, the one place its keys and values are checked. */
const OPTION_PARSERS: Readonly<Record<SnapshotterName, (storageOpts: readonly string[]) => object>> = {
  overlay: parseOverlayOptions,
  'fuse-overlayfs': (storageOpts) => noOptions('fuse-overlayfs', storageOpts),
  erofs: (storageOpts) => noOptions('erofs', storageOpts),
  native: parseNativeOptions,
  btrfs: parseBtrfsOptions,
  zfs: parseZfsOptions,
  blockfile: parseBlockfileOptions,
};

/** A driver without options refuses any given for it. */
function noOptions(driver: SnapshotterName, storageOpts: readonly string[]): object {
  const [first] = optionsFor(driver, storageOpts);
  if (first) throw unknownOption(first, []);
  return {};
}

/**
 * Checks every storage option against the driver its prefix names (an unknown prefix, an unknown
 * key of that driver, a bad value: a StorageOptionError naming the option) and returns the options
 * of `driver`, parsed, when one is given.
 */
export function validateStorageOpts(storageOpts: readonly string[], driver?: SnapshotterName): object | undefined {
  const drivers = new Set(storageOpts.map((o) => splitStorageOpt(o).driver));
  for (const name of drivers) OPTION_PARSERS[name](storageOpts);
  return driver === undefined ? undefined : OPTION_PARSERS[driver](storageOpts);
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
export { OverlaySnapshotter, parseOverlayOptions, type OverlayOptions } from './overlay/overlay.js';
export { FuseOverlayfsSnapshotter } from './fuse-overlayfs/fuse-overlayfs.js';
export { NativeSnapshotter, parseNativeOptions, type NativeOptions } from './native/native.js';
export { BtrfsSnapshotter, parseBtrfsOptions, type BtrfsOptions } from './btrfs/btrfs.js';
export { ZfsSnapshotter, parseZfsOptions, type ZfsOptions } from './zfs/zfs.js';
export { splitStorageOpt, type StorageOpt } from './storage-opts.js';
export { BlockfileSnapshotter, parseBlockfileOptions, type BlockfileOptions } from './blockfile/blockfile.js';
export { ErofsSnapshotter, erofsUnavailable, LAYER_IMAGE } from './erofs/erofs.js';
