import { chmod, mkdir } from 'node:fs/promises';
import { runTool } from '../command.js';
import { FullTreeSnapshotter } from '../full-tree.js';

/**
 * containerd's native snapshotter: snapshot `id` is a full tree at `snapshots/<id>`. Prepare
 * and view copy the parent's tree with one `cp -a` (reflinks where the filesystem has them;
 * hardlink groups, xattrs, owners, modes and times kept); mounts are bind mounts.
 */
export class NativeSnapshotter extends FullTreeSnapshotter {
  readonly name = 'native';

  private constructor(root: string) {
    super(root);
  }

  static async open(root: string): Promise<NativeSnapshotter> {
    const s = new NativeSnapshotter(root);
    await s.init();
    return s;
  }

  protected async createData(dir: string, _kind: 'active' | 'view', parents: number[]): Promise<void> {
    if (parents.length === 0) {
      await mkdir(dir);
      await chmod(dir, 0o755);
      return;
    }
    const source = this.dataDir(parents[0]!);
    // One subprocess per snapshot, never one per file. -a = -dR --preserve=all (links, xattrs, owners, modes, times).
    await runTool('cp', ['-a', '--reflink=auto', '--preserve=all', '--no-target-directory', source, dir], `copying parent snapshot data ${source} to ${dir} failed`);
  }
}
