import { InvalidArgumentError } from '../errors.js';
import { optionsFor, splitStorageOpt, unknownOption } from './storage-opts.js';
import { kernelHasOverlay } from './overlay/kernel.js';
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
  const backend = BACKENDS[name];
  if (!backend) throw new InvalidArgumentError(`unknown snapshotter ${JSON.stringify(name)} (${SNAPSHOTTER_NAMES.join(', ')})`);
  await ensurePrivateDir(root);
  return (await backend()).open(root, storageOpts);
}

interface Backend {
  open(root: string, storageOpts: readonly string[]): Promise<Snapshotter>;
  /** The backend's parser of its storage options, the one place its keys and values are checked. */
  parse(storageOpts: readonly string[]): object;
}

/**
 * Each backend, loaded when it is used: a command pays at start-up only for the driver its store
 * uses (the others' modules, EROFS's writer among them, were a third of a pull's modules).
 */
const BACKENDS: Readonly<Record<SnapshotterName, () => Promise<Backend>>> = {
  overlay: () => import('./overlay/overlay.js').then((m) => withOptions(m.OverlaySnapshotter, m.parseOverlayOptions)),
  'fuse-overlayfs': () => import('./fuse-overlayfs/fuse-overlayfs.js').then((m) => withoutOptions('fuse-overlayfs', m.FuseOverlayfsSnapshotter)),
  erofs: () => import('./erofs/erofs.js').then((m) => withoutOptions('erofs', m.ErofsSnapshotter)),
  native: () => import('./native/native.js').then((m) => withOptions(m.NativeSnapshotter, m.parseNativeOptions)),
  btrfs: () => import('./btrfs/btrfs.js').then((m) => withOptions(m.BtrfsSnapshotter, m.parseBtrfsOptions)),
  zfs: () => import('./zfs/zfs.js').then((m) => withOptions(m.ZfsSnapshotter, m.parseZfsOptions)),
  blockfile: () => import('./blockfile/blockfile.js').then((m) => withOptions(m.BlockfileSnapshotter, m.parseBlockfileOptions)),
};

/** A backend whose `open` takes the options its parser makes of the storage-opts. */
function withOptions<O extends object>(backend: { open(root: string, options: O): Promise<Snapshotter> }, parse: (storageOpts: readonly string[]) => O): Backend {
  return { open: (root, storageOpts) => backend.open(root, parse(storageOpts)), parse };
}

/** A backend that takes no options. */
function withoutOptions(driver: SnapshotterName, backend: { open(root: string): Promise<Snapshotter> }): Backend {
  return { open: (root) => backend.open(root), parse: (storageOpts) => noOptions(driver, storageOpts) };
}

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
export async function validateStorageOpts(storageOpts: readonly string[], driver?: SnapshotterName): Promise<object | undefined> {
  const drivers = new Set(storageOpts.map((o) => splitStorageOpt(o).driver));
  for (const name of drivers) (await BACKENDS[name]()).parse(storageOpts);
  return driver === undefined ? undefined : (await BACKENDS[driver]()).parse(storageOpts);
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
export { splitStorageOpt, type StorageOpt } from './storage-opts.js';
