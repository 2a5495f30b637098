/** CONTRACT (being implemented): opens a snapshotter backend on a root directory. */
import type { Snapshotter } from './snapshotter.js';
export type SnapshotterName = 'overlay' | 'native' | 'btrfs' | 'zfs';
export declare function openSnapshotter(name: SnapshotterName, root: string): Promise<Snapshotter>;
export type { Snapshotter } from './snapshotter.js';
