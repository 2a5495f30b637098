import { chmod, lstat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { FailedPreconditionError } from '../../errors.js';
import { runTool } from '../command.js';
import { removeTree, SNAPSHOTS_DIR } from '../fsutil.js';
import { FullTreeSnapshotter } from '../full-tree.js';

/** statfs f_type of btrfs (linux/magic.h). */
const BTRFS_SUPER_MAGIC = 0x9123683e;
/** The inode number of every subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID). */
const SUBVOLUME_ROOT_INO = 256n;

/**
 * containerd's btrfs snapshotter: snapshot `id` is a subvolume at `snapshots/<id>`. Prepare on a
 * parent is a writable snapshot of the parent's subvolume, a view a read-only one: constant time
 * and no data copied, whatever the size of the tree. Commit makes the subvolume read-only, so a
 * committed layer cannot change under its children; a view is read-only too. Layers are applied in full onto the snapshot
 * (whiteouts become deletions), as with native; mounts are bind mounts of the subvolume.
 * Subvolumes are made and deleted with btrfs-progs (`btrfs subvolume …`).
 */
export class BtrfsSnapshotter extends FullTreeSnapshotter {
  readonly name = 'btrfs';

  private constructor(root: string) {
    super(root);
  }

  static async open(root: string): Promise<BtrfsSnapshotter> {
    const fs = await statfs(root);
    if (fs.type !== BTRFS_SUPER_MAGIC) {
      throw new FailedPreconditionError(`btrfs snapshotter: ${root} is not on a btrfs filesystem (statfs type 0x${fs.type.toString(16)}); put the snapshot root on btrfs or use --snapshotter overlay|native`);
    }
    await btrfs(['--version'], 'btrfs-progs is needed for the btrfs snapshotter');
    const s = new BtrfsSnapshotter(root);
    await s.init();
    return s;
  }

  protected async createData(dir: string, kind: 'active' | 'view', parents: number[]): Promise<void> {
    // Writable even for a view: a read-only subvolume cannot be renamed into place (EROFS); sealData follows.
    if (parents.length === 0) {
      await btrfs(['subvolume', 'create', dir], `creating subvolume ${dir}`);
      await chmod(dir, 0o755);
      return;
    }
    const source = this.dataDir(parents[0]!);
    await btrfs(['subvolume', 'snapshot', source, dir], `snapshotting ${source} to ${dir}`);
  }

  protected override async sealData(id: number): Promise<void> {
    await btrfs(['property', 'set', '-ts', this.dataDir(id), 'ro', 'true'], `making subvolume ${this.dataDir(id)} read-only`);
  }

  /**
   * A read-only subvolume cannot be moved to removal/ first, so it is deleted where it is: one
   * atomic unlink of the subvolume (btrfs frees its extents in the background). Its metadata is
   * already gone; a failure is left for cleanup, as in the base class.
   */
  protected override async removeData(id: number): Promise<void> {
    await this.deleteData(this.dataDir(id)).catch(() => {});
  }

  protected override async discardOrphan(name: string): Promise<void> {
    await this.deleteData(join(this.root, SNAPSHOTS_DIR, name));
  }

  protected override async deleteData(path: string): Promise<void> {
    if (await isSubvolume(path)) await btrfs(['subvolume', 'delete', path], `deleting subvolume ${path}`);
    else await removeTree(path);
  }
}

/** A subvolume's root: a directory whose inode is 256 (a missing path is not one). */
export async function isSubvolume(path: string): Promise<boolean> {
  try {
    const st = await lstat(path, { bigint: true });
    return st.isDirectory() && st.ino === SUBVOLUME_ROOT_INO;
  } catch {
    return false;
  }
}

function btrfs(args: string[], what: string): Promise<string> {
  return runTool('btrfs', args, what, 'btrfs-progs');
}
