/**
 * Every backend's class and storage-option parser, for the library and tests. The engine and the
 * CLI open backends through openSnapshotter (index.ts), which loads only the one in use.
 */
export { OverlaySnapshotter, parseOverlayOptions, type OverlayOptions } from './overlay/overlay.js';
export { FuseOverlayfsSnapshotter } from './fuse-overlayfs/fuse-overlayfs.js';
export { NativeSnapshotter, parseNativeOptions, type NativeOptions } from './native/native.js';
export { BtrfsSnapshotter, parseBtrfsOptions, type BtrfsOptions } from './btrfs/btrfs.js';
export { ZfsSnapshotter, parseZfsOptions, type ZfsOptions } from './zfs/zfs.js';
export { BlockfileSnapshotter, parseBlockfileOptions, type BlockfileOptions } from './blockfile/blockfile.js';
export { ErofsSnapshotter, erofsUnavailable, LAYER_IMAGE } from './erofs/erofs.js';
