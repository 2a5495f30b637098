import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MetadataSnapshotter } from '../base.js';
import { diskUsage } from '../fsutil.js';
import { escapeOverlayPath } from '../mount.js';
import type { Mount, Usage } from '../snapshotter.js';
import { overlayFeatures } from './kernel.js';

/**
 * containerd's overlayfs snapshotter: snapshot `id` is `snapshots/<id>/{fs,work}`. An active
 * snapshot without parent is a bind mount of its `fs`; with parents it is an overlay whose
 * upperdir is its `fs` and whose lowerdirs are the parents' `fs`, newest first. A view of one
 * parent is a read-only bind of that parent's `fs`; of more, a lowerdir-only overlay. Commit and
 * rebase change metadata only: a committed `fs` is used as a lower in place.
 */
export class OverlaySnapshotter extends MetadataSnapshotter {
  readonly name = 'overlay';
  readonly capabilities = { rebase: true };
  readonly applyMode = 'overlay' as const;
  /** Mounts use `userxattr`, so whiteout and opaque xattrs must be `user.overlay.*` (rootless). */
  readonly userxattr: boolean;
  private readonly indexOff: boolean;

  private constructor(root: string) {
    super(root);
    const features = overlayFeatures();
    this.userxattr = features.userxattr;
    this.indexOff = features.indexOff;
  }

  static async open(root: string): Promise<OverlaySnapshotter> {
    const s = new OverlaySnapshotter(root);
    await s.init();
    return s;
  }

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
    const options: string[] = [];
    if (this.indexOff) options.push('index=off');
    if (this.userxattr) options.push('userxattr');
    options.push(`lowerdir=${parents.map((p) => escapeOverlayPath(this.fsDir(p))).join(':')}`);
    if (kind === 'active') options.push(`upperdir=${this.fsDir(id)}`, `workdir=${join(this.dataDir(id), 'work')}`);
    return [{ type: 'overlay', source: 'overlay', options }];
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
