import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MetadataSnapshotter } from '../base.js';
import { diskUsage } from '../fsutil.js';
import type { Mount, Usage } from '../snapshotter.js';
import { overlayFeatures } from './kernel.js';

/** The layers of one union mount: lowers newest first; upper and work for a writable one. */
export interface UnionLayers {
  lowers: string[];
  upper?: { upper: string; work: string };
}

/**
 * The layout overlay and fuse-overlayfs share (containerd's overlayfs snapshotter): snapshot `id`
 * is `snapshots/<id>/{fs,work}`. An active snapshot without parent is a bind mount of its `fs`;
 * with parents it is a union whose upper is its `fs` and whose lowers are the parents' `fs`,
 * newest first. A view of one parent is a read-only bind of that parent's `fs`; of more, a
 * lowers-only union. Commit and rebase change metadata only: a committed `fs` is used as a lower
 * in place. Layers are applied with overlay whiteouts (char 0/0, `*.overlay.opaque`), which both
 * the kernel and fuse-overlayfs read. Subclasses say how a union is mounted.
 */
export abstract class OverlayLayoutSnapshotter extends MetadataSnapshotter {
  readonly capabilities = { rebase: true };
  readonly applyMode: 'overlay' | 'erofs' = 'overlay';
  /** Opaque and whiteout xattrs must be `user.overlay.*` (rootless: trusted.* is out of reach). */
  readonly userxattr: boolean = overlayFeatures().userxattr;

  /** The mount of a union of `layers` (the kernel's overlay, or the fuse-overlayfs daemon). */
  protected abstract unionMount(layers: UnionLayers): Mount;

  /** The directory that holds snapshot `id`'s own files (its upperdir while active). */
  fsDir(id: number): string {
    return join(this.dataDir(id), 'fs');
  }

  protected async createData(dir: string, _kind: 'active' | 'view', _parents: number[]): Promise<void> {
    await mkdir(dir, { mode: 0o700 });
    await mkdir(join(dir, 'fs'));
    // A fresh root is 0755 whatever the umask; the layer applied to it may change that.
    await chmod(join(dir, 'fs'), 0o755);
    await mkdir(join(dir, 'work'), { mode: 0o700 });
  }

  protected mountsFor(kind: 'active' | 'view', id: number, parents: number[]): Mount[] {
    if (parents.length === 0) return [bind(this.fsDir(id), kind === 'view')];
    if (kind === 'view' && parents.length === 1) return [bind(this.fsDir(parents[0]!), true)];
    const lowers = parents.map((p) => this.fsDir(p));
    return [this.unionMount(kind === 'active' ? { lowers, upper: { upper: this.fsDir(id), work: join(this.dataDir(id), 'work') } } : { lowers })];
  }

  protected dataUsage(id: number): Promise<Usage> {
    return diskUsage(this.fsDir(id));
  }

  protected applyDirOf(id: number): string {
    return this.fsDir(id);
  }

  /** Docker overlay2's names: the snapshot's own directory is the upper, its parents' the lowers. */
  protected override driverDataOf(id: number, parents: number[]): Record<string, string> {
    return {
      ...(parents.length > 0 ? { LowerDir: parents.map((p) => this.fsDir(p)).join(':') } : {}),
      UpperDir: this.fsDir(id),
      WorkDir: join(this.dataDir(id), 'work'),
    };
  }
}

function bind(source: string, readonly: boolean): Mount {
  return { type: 'bind', source, options: ['rbind', readonly ? 'ro' : 'rw'] };
}
