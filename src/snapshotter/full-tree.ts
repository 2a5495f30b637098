import { MetadataSnapshotter } from './base.js';
import { diskUsage } from './fsutil.js';
import type { Mount, Usage } from './snapshotter.js';

/**
 * Backends whose snapshot `id` is a whole tree at `snapshots/<id>` (native, btrfs): layers are
 * applied in full onto it (whiteouts become deletions), mounts are bind mounts of it, and its
 * usage is the tree's. Subclasses say how a tree is made from its parent's.
 */
export abstract class FullTreeSnapshotter extends MetadataSnapshotter {
  readonly capabilities = { rebase: false };
  readonly applyMode = 'full' as const;

  /** Where snapshot `id`'s tree is: its data directory, unless the backend keeps the tree elsewhere. */
  protected treeDir(id: number): string {
    return this.dataDir(id);
  }

  protected mountsFor(kind: 'active' | 'view', id: number, _parents: number[]): Mount[] {
    return [{ type: 'bind', source: this.treeDir(id), options: ['rbind', kind === 'view' ? 'ro' : 'rw'] }];
  }

  protected dataUsage(id: number): Promise<Usage> {
    return diskUsage(this.treeDir(id));
  }

  protected applyDirOf(id: number): string {
    return this.treeDir(id);
  }
}
