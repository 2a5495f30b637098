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

  protected mountsFor(kind: 'active' | 'view', id: number, _parents: number[]): Mount[] {
    return [{ type: 'bind', source: this.dataDir(id), options: ['rbind', kind === 'view' ? 'ro' : 'rw'] }];
  }

  protected dataUsage(id: number): Promise<Usage> {
    return diskUsage(this.dataDir(id));
  }

  protected applyDirOf(id: number): string {
    return this.dataDir(id);
  }
}
