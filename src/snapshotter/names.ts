/** stratum's snapshotter backends (Docker's storage drivers overlay2 and vfs are overlay and native; blockfile is devicemapper's loop-lvm without device-mapper; erofs is containerd 2.1's EROFS layers under overlay). */
export type SnapshotterName = 'overlay' | 'fuse-overlayfs' | 'native' | 'btrfs' | 'zfs' | 'blockfile' | 'erofs';
export const SNAPSHOTTER_NAMES: readonly SnapshotterName[] = ['overlay', 'fuse-overlayfs', 'native', 'btrfs', 'zfs', 'blockfile', 'erofs'];
