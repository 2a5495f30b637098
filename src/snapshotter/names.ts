/** stratum's snapshotter backends (Docker's storage drivers overlay2 and vfs are overlay and native). */
export type SnapshotterName = 'overlay' | 'fuse-overlayfs' | 'native' | 'btrfs' | 'zfs';
export const SNAPSHOTTER_NAMES: readonly SnapshotterName[] = ['overlay', 'fuse-overlayfs', 'native', 'btrfs', 'zfs'];
