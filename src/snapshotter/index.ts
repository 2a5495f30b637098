import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { mountAll, unmountAll } from './mount.js';
import { BtrfsSnapshotter } from './btrfs/btrfs.js';
import { ZfsSnapshotter } from './zfs/zfs.js';
import { NativeSnapshotter } from './native/native.js';
import { kernelHasOverlay } from './overlay/kernel.js';
import { OverlaySnapshotter } from './overlay/overlay.js';
import type { Snapshotter } from './snapshotter.js';
import { ensurePrivateDir } from '../sys/mkdir-all.js';
import { checkLocation } from '../oci/location.js';
import { reclaimTemporaries } from './temporaries.js';

export type SnapshotterName = 'overlay' | 'native' | 'btrfs' | 'zfs';
export const SNAPSHOTTER_NAMES: readonly SnapshotterName[] = ['overlay', 'native', 'btrfs', 'zfs'];

/**
 * Opens (creating if needed) the snapshotter `name` on `root`, and removes what processes that
 * died left there (temporary snapshots and mounts; see temporaries.ts). That reclaim is best
 * effort: `cleanup()` does it again and reports a failure. A root inside a store's blobs or a
 * snapshot is refused (UnsafeLocationError).
 */
export async function openSnapshotter(name: SnapshotterName, root: string, options: { reclaim?: boolean } = {}): Promise<Snapshotter> {
  const snapshotter = await openBackend(name, root);
  if (options.reclaim !== false) await reclaimTemporaries(snapshotter).catch(() => {});
  return snapshotter;
}

async function openBackend(name: SnapshotterName, root: string): Promise<Snapshotter> {
  checkLocation(root, 'snapshot root');
  await ensurePrivateDir(root);
  switch (name) {
    case 'overlay':
      return OverlaySnapshotter.open(root);
    case 'native':
      return NativeSnapshotter.open(root);
    case 'btrfs':
      return BtrfsSnapshotter.open(root);
    case 'zfs':
      return ZfsSnapshotter.open(root);
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
  return (await overlayWorksIn(probeDir)) ? 'overlay' : 'native';
}

async function hasSysAdmin(): Promise<boolean> {
  try {
    const status = await readFile('/proc/self/status', 'utf8');
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    return hex !== undefined && (BigInt(`0x${hex}`) & (1n << 21n)) !== 0n;
  } catch {
    return false;
  }
}

async function overlayWorksIn(dir: string): Promise<boolean> {
  await mkdir(dir, { recursive: true });
  const probe = await mkdtemp(join(dir, '.overlay-probe-'));
  const [lower1, lower2, upper, work, merged] = ['l1', 'l2', 'u', 'w', 'm'].map((d) => join(probe, d)) as [string, string, string, string, string];
  try {
    for (const d of [lower1, lower2, upper, work, merged]) await mkdir(d);
    await mountAll([{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lower1}:${lower2}`, `upperdir=${upper}`, `workdir=${work}`] }], merged);
    await unmountAll(merged);
    return true;
  } catch {
    return false;
  } finally {
    await unmountAll(merged, true).catch(() => {});
    await rm(probe, { recursive: true, force: true });
  }
}

export type { Snapshotter, Info, Kind, Mount, Usage, SnapshotOptions, CommitOptions, WalkFunc, SnapshotProblem } from './snapshotter.js';
export { mountAll, unmountAll, isMountPoint } from './mount.js';
export { reclaimTemporaries, OWNER_LABEL, TEMP_MOUNTS_DIR, type ReclaimedTemporaries } from './temporaries.js';
export { OverlaySnapshotter } from './overlay/overlay.js';
export { NativeSnapshotter } from './native/native.js';
export { BtrfsSnapshotter } from './btrfs/btrfs.js';
export { ZfsSnapshotter } from './zfs/zfs.js';
