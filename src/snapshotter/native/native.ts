import { execFile } from 'node:child_process';
import { chmod, mkdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { StoreError } from '../../errors.js';
import { FullTreeSnapshotter } from '../full-tree.js';

const run = promisify(execFile);

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
    try {
      // One subprocess per snapshot, never one per file. -a = -dR --preserve=all (links, xattrs, owners, modes, times).
      await run('cp', ['-a', '--reflink=auto', '--preserve=all', '--no-target-directory', source, dir], { maxBuffer: 1 << 20 });
    } catch (err) {
      const e = err as Error & { stderr?: string };
      throw new StoreError(`copying parent snapshot data ${source} to ${dir} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
    }
  }
}
