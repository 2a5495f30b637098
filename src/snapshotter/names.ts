/** stratum's snapshotter backends (Docker's storage drivers overlay2 and vfs are overlay and native; blockfile is devicemapper's loop-lvm without device-mapper). */
export type SnapshotterName = 'overlay' | 'fuse-overlayfs' | 'native' | 'btrfs' | 'zfs' | 'blockfile';
export const SNAPSHOTTER_NAMES: readonly SnapshotterName[] = ['overlay', 'fuse-overlayfs', 'native', 'btrfs', 'zfs', 'blockfile'];
