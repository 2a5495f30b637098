import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StorageOptionError } from '../../errors.js';
import { runTool } from '../command.js';
import { ownedName, removeTree, STAGING_DIR } from '../fsutil.js';
import { FullTreeSnapshotter } from '../full-tree.js';
import { optionsFor, parseBoolOption, unknownOption } from '../storage-opts.js';

export interface NativeOptions {
  /** true: every copy is a reflink (FICLONE), refused at open where the filesystem has none; false: bytes are copied; unset: reflink where it can. */
  reflink?: boolean;
}

/** The native options among a store's storage-opts: `native.reflink=true|false` (`vfs.` is Docker's prefix). */
export function parseNativeOptions(storageOpts: readonly string[] = []): NativeOptions {
  const out: NativeOptions = {};
  for (const opt of optionsFor('native', storageOpts)) {
    if (opt.key === 'reflink') out.reflink = parseBoolOption(opt);
    else throw unknownOption(opt, ['reflink']);
  }
  return out;
}

/**
 * containerd's native snapshotter: snapshot `id` is a full tree at `snapshots/<id>`. Prepare
 * and view copy the parent's tree with one `cp -a` (reflinks where the filesystem has them, or as
 * native.reflink says; hardlink groups, xattrs, owners, modes and times kept); mounts are bind mounts.
 */
export class NativeSnapshotter extends FullTreeSnapshotter {
  readonly name = 'native';

  private constructor(
    root: string,
    readonly options: Readonly<NativeOptions>,
  ) {
    super(root);
  }

  static async open(root: string, options: NativeOptions = {}): Promise<NativeSnapshotter> {
    const s = new NativeSnapshotter(root, options);
    await s.init();
    if (options.reflink === true) await s.checkReflink();
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
    await runTool('cp', ['-a', `--reflink=${this.reflinkMode()}`, '--preserve=all', '--no-target-directory', source, dir], `copying parent snapshot data ${source} to ${dir} failed`);
  }

  private reflinkMode(): 'auto' | 'always' | 'never' {
    return this.options.reflink === undefined ? 'auto' : this.options.reflink ? 'always' : 'never';
  }

  /** native.reflink=true where FICLONE fails would fail every prepare: refused once, here. */
  private async checkReflink(): Promise<void> {
    const probe = join(this.root, STAGING_DIR, ownedName('reflink-probe'));
    try {
      await mkdir(probe);
      await writeFile(join(probe, 'a'), 'reflink probe\n');
      await runTool('cp', ['--reflink=always', join(probe, 'a'), join(probe, 'b')], `reflinking a file in ${this.root}`);
    } catch (err) {
      throw new StorageOptionError('native.reflink=true', `the filesystem of ${this.root} cannot reflink (FICLONE): ${(err as Error).message}; use native.reflink=false or leave it unset`);
    } finally {
      await removeTree(probe);
    }
  }
}
