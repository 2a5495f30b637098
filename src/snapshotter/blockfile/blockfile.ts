import { mkdir, readdir, readFile, rename, stat, statfs, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../../errors.js';
import { isCode } from '../../content/layout.js';
import { runTool } from '../command.js';
import { diskUsage, exists, ownedName, removeTree, SNAPSHOTS_DIR, STAGING_DIR } from '../fsutil.js';
import { FullTreeSnapshotter } from '../full-tree.js';
import { optionsFor, parseChoiceOption, parseSize, unknownOption } from '../storage-opts.js';
import { isMountPoint, unmountAll } from '../mount.js';
import type { Info, Mount, Usage } from '../snapshotter.js';

/** In a snapshot's data directory: the file holding its filesystem, and where that is mounted while active or a view. */
const IMAGE = 'image';
const TREE = 'fs';
/** A committed snapshot's usage, measured at commit (its filesystem is not mounted afterwards). */
const USAGE_FILE = 'usage.json';
/** The empty filesystem every snapshot without parent starts as (made once with mkfs). */
const SCRATCH = 'scratch.img';
/** The options the scratch file was made with: they hold for the root's whole life. */
const OPTIONS_FILE = 'blockfile.json';

export type BlockfileFsType = 'ext4' | 'xfs';

export interface BlockfileOptions {
  /** Size of every snapshot's filesystem in bytes (a sparse file: only what is written takes disk). Default 1 GiB. */
  size: number;
  /** Filesystem inside each file. Default ext4; xfs needs mkfs.xfs (xfsprogs) and at least 300 MiB. */
  fsType: BlockfileFsType;
  /** Extra arguments for mkfs (Docker's dm.mkfsarg). */
  mkfsOptions: string[];
}

export const DEFAULT_BLOCKFILE_OPTIONS: Readonly<BlockfileOptions> = { size: 1 << 30, fsType: 'ext4', mkfsOptions: [] };

export { parseSize };

const BLOCKFILE_KEYS = ['size', 'fs', 'mkfsarg'] as const;

/**
 * The blockfile options among a store's storage-opts (`blockfile.size=10G`, `blockfile.fs=xfs`,
 * `blockfile.mkfsarg=-O ^has_journal`, repeatable; Docker's devicemapper names `dm.basesize`,
 * `dm.fs`, `dm.mkfsarg` too). Options of other drivers are ignored; an unknown blockfile one is refused.
 */
export function parseBlockfileOptions(storageOpts: readonly string[] = []): Partial<BlockfileOptions> {
  const out: Partial<BlockfileOptions> = {};
  for (const opt of optionsFor('blockfile', storageOpts)) {
    const name = opt.key;
    if (name === 'size' || name === 'basesize') out.size = parseSize(opt);
    else if (name === 'fs' || name === 'fstype') out.fsType = parseChoiceOption(opt, ['ext4', 'xfs'] as const);
    else if (name === 'mkfsarg' || name === 'mkfsoptions') out.mkfsOptions = [...(out.mkfsOptions ?? []), ...opt.value.split(/\s+/).filter((a) => a !== '')];
    else throw unknownOption(opt, BLOCKFILE_KEYS);
  }
  return out;
}

/**
 * containerd's blockfile snapshotter, the heir of Docker's devicemapper loop-lvm on kernels
 * without device-mapper: snapshot `id` is one file `snapshots/<id>/image` holding a whole
 * filesystem (ext4, or xfs). A snapshot without parent starts as a copy of a scratch file made
 * once with mkfs; prepare and view copy the parent's file with `cp --reflink=auto --sparse=auto`:
 * FICLONE first (a reflink on btrfs and xfs hosts, no data copied, block-level copy-on-write
 * afterwards), else copy_file_range over the data extents only, so holes stay holes.
 *
 * An active snapshot or a view is loop-mounted (direct I/O, read-only for a view; see loopMount) at
 * `snapshots/<id>/fs` for as long as it lives, mounted again on demand after a reboot; its mounts
 * are bind mounts of that directory and layers are applied in full onto it (whiteouts become
 * deletions), as on native and btrfs. Commit syncs and unmounts the filesystem, so the committed
 * file is a clean filesystem that children copy. Only one loop mount per file is ever made: two
 * read-write mounts of one ext4 through two loop devices would corrupt it.
 */
export class BlockfileSnapshotter extends FullTreeSnapshotter {
  readonly name = 'blockfile';
  /** Mounts in progress per tree, so two calls never mount the same file twice. */
  private readonly mounting = new Map<string, Promise<void>>();

  private constructor(
    root: string,
    readonly options: Readonly<BlockfileOptions>,
  ) {
    super(root);
  }

  /**
   * Opens the snapshotter at `root`. The options are used when the root is new and recorded
   * there; an existing root keeps its own, and asking for different ones is refused.
   */
  static async open(root: string, requested: Partial<BlockfileOptions> = {}): Promise<BlockfileSnapshotter> {
    const recorded = await readOptions(root);
    if (recorded !== undefined) {
      for (const [key, value] of Object.entries(requested) as Array<[keyof BlockfileOptions, unknown]>) {
        if (JSON.stringify(value) !== JSON.stringify(recorded[key])) {
          throw new InvalidArgumentError(`blockfile snapshotter at ${root} was made with ${key}=${JSON.stringify(recorded[key])}; it cannot change to ${JSON.stringify(value)} (a new store root can)`);
        }
      }
    }
    const options = recorded ?? { ...DEFAULT_BLOCKFILE_OPTIONS, ...requested };
    if (options.fsType === 'xfs' && options.size < 300 << 20) throw new InvalidArgumentError(`blockfile snapshotter: an xfs filesystem needs at least 300M (size ${options.size})`);
    if (options.size < 16 << 20) throw new InvalidArgumentError(`blockfile snapshotter: size ${options.size} is below the 16M minimum`);
    const why = await blockfileUnavailable(options.fsType);
    if (why !== undefined) throw new FailedPreconditionError(`blockfile snapshotter: ${why}`);
    const s = new BlockfileSnapshotter(root, options);
    await s.init();
    await s.makeScratch();
    return s;
  }

  /** The scratch filesystem, made once: mkfs in staging, then renamed in with the options beside it. */
  private async makeScratch(): Promise<void> {
    const scratch = join(this.root, SCRATCH);
    if (await exists(scratch)) return;
    const tmp = join(this.root, STAGING_DIR, ownedName('scratch'));
    try {
      await writeFile(tmp, '');
      await runTool('truncate', ['-s', String(this.options.size), tmp], `sizing the scratch file ${tmp}`);
      if (this.options.fsType === 'ext4') {
        await runTool('mkfs.ext4', ['-q', '-F', ...this.options.mkfsOptions, tmp], `making the ext4 scratch filesystem ${tmp}`, 'e2fsprogs');
        // A fresh ext4 has lost+found: a snapshot without parent must be empty (e2fsck makes it again when needed).
        await runTool('debugfs', ['-w', '-R', 'rmdir lost+found', tmp], `removing lost+found from ${tmp}`, 'e2fsprogs');
      } else {
        await runTool('mkfs.xfs', ['-q', '-f', ...this.options.mkfsOptions, tmp], `making the xfs scratch filesystem ${tmp}`, 'xfsprogs');
      }
      await writeFile(join(this.root, OPTIONS_FILE), JSON.stringify(this.options) + '\n');
      await rename(tmp, scratch);
    } finally {
      await removeTree(tmp);
    }
  }

  protected override treeDir(id: number): string {
    return join(this.dataDir(id), TREE);
  }

  protected override driverDataOf(id: number, parents: number[]): Record<string, string> {
    return { ...super.driverDataOf(id, parents), DeviceFile: join(this.dataDir(id), IMAGE), DeviceSize: String(this.options.size), FsType: this.options.fsType };
  }

  protected async createData(dir: string, _kind: 'active' | 'view', parents: number[]): Promise<void> {
    await mkdir(dir);
    await mkdir(join(dir, TREE));
    const source = parents.length === 0 ? join(this.root, SCRATCH) : join(this.dataDir(parents[0]!), IMAGE);
    await copyBlockFile(source, join(dir, IMAGE));
  }

  override async applyDir(key: string): Promise<string> {
    const dir = await super.applyDir(key);
    await this.ensureMounted(dir, false);
    return dir;
  }

  override async usage(key: string): Promise<Usage> {
    this.checkOpen();
    const info: Info = await this.stat(key);
    if (info.kind !== 'committed') {
      const [m] = await this.mounts(key);
      return diskUsage(m!.source);
    }
    return super.usage(key);
  }

  /** A committed snapshot's usage as measured when it was committed. */
  protected override async dataUsage(id: number): Promise<Usage> {
    const tree = this.treeDir(id);
    if (await isMountPoint(tree)) return diskUsage(tree);
    try {
      return JSON.parse(await readFile(join(this.dataDir(id), USAGE_FILE), 'utf8')) as Usage;
    } catch (err) {
      if (!isCode(err, 'ENOENT')) throw err;
      const st = await stat(join(this.dataDir(id), IMAGE));
      return { size: st.blocks * 512, inodes: 0 };
    }
  }

  /**
   * Commit (and a new view, not mounted yet): the filesystem is synced, its usage recorded and
   * it is unmounted, so the file is whole for the children that copy it. A bind mount of it that a
   * caller still holds keeps the superblock (and loop device) alive until it is unmounted too.
   */
  protected override async sealData(id: number): Promise<void> {
    const tree = this.treeDir(id);
    if (!(await isMountPoint(tree))) return;
    await runTool('sync', ['-f', tree], `syncing ${tree}`);
    await writeFile(join(this.dataDir(id), USAGE_FILE), JSON.stringify(await diskUsage(tree)) + '\n');
    await unmountAll(tree);
  }

  protected override async removeData(id: number): Promise<void> {
    await unmountAll(this.treeDir(id), true).catch(() => {});
    await super.removeData(id);
  }

  protected override async discardOrphan(name: string): Promise<void> {
    await unmountAll(join(this.root, SNAPSHOTS_DIR, name, TREE), true).catch(() => {});
    await super.discardOrphan(name);
  }

  /** Never deletes through a mounted filesystem: its tree is detached first, or nothing is deleted. */
  protected override async deleteData(path: string): Promise<void> {
    const tree = join(path, TREE);
    await unmountAll(tree, true).catch(() => {});
    if (await isMountPoint(tree)) throw new FailedPreconditionError(`cannot delete ${path}: ${tree} is still mounted`);
    await removeTree(path);
  }

  /** The mounts, after the tree they bind is loop-mounted (read-only for a view). */
  protected override async readyMounts(mounts: Mount[]): Promise<Mount[]> {
    for (const m of mounts) await this.ensureMounted(m.source, m.options.includes('ro'));
    return mounts;
  }

  private ensureMounted(tree: string, readonly: boolean): Promise<void> {
    const pending = this.mounting.get(tree);
    if (pending) return pending;
    const p = (async () => {
      if (await isMountPoint(tree)) return;
      const options = [readonly ? 'ro' : 'rw'];
      // ext4's background zeroing of inode tables would write to every new snapshot's file.
      if (this.options.fsType === 'ext4') options.push('noinit_itable');
      await loopMount(join(dirname(tree), IMAGE), tree, this.options.fsType, options);
    })().finally(() => this.mounting.delete(tree));
    this.mounting.set(tree, p);
    return p;
  }
}

/**
 * Mounts the filesystem in `image` on `target` through a loop device with direct I/O, as
 * containerd's blockfile does (`loop,direct-io`: the file's pages are not cached twice, once
 * for the filesystem and once for the loop device); without direct I/O where the backing
 * filesystem refuses it. A loop device already attached to the file is used instead of a second
 * one: two devices on one ext4 would be two filesystems writing one file. The device is always
 * writable, so a read-only mount of a copy whose journal still needs replaying works. Once
 * mounted it is detached: the kernel then frees it when the filesystem is unmounted
 * (autoclear), as `mount -o loop` does.
 */
async function loopMount(image: string, target: string, fsType: BlockfileFsType, options: string[]): Promise<void> {
  const attached = (await runTool('losetup', ['--noheadings', '--output', 'NAME', '--associated', image], `looking for a loop device on ${image}`, 'mount')).trim().split('\n')[0];
  let device = attached;
  if (!device) {
    const attach = (directIo: boolean) => runTool('losetup', ['--find', '--show', ...(directIo ? ['--direct-io=on'] : []), image], `attaching ${image} to a loop device`, 'mount');
    device = (await attach(true).catch(() => attach(false))).trim();
  }
  try {
    await runTool('mount', ['-t', fsType, '-o', options.join(','), device, target], `mounting ${image} (${device}) on ${target}`, 'mount');
  } finally {
    // Attached here: detach now (autoclear while mounted, at once when the mount failed).
    if (!attached) await runTool('losetup', ['--detach', device], `detaching ${device}`, 'mount').catch(() => {});
  }
}

/**
 * Copies a snapshot file: FICLONE (a reflink: btrfs, xfs) when the filesystem has it, else
 * copy_file_range over the data extents (SEEK_DATA/SEEK_HOLE), keeping the copy sparse. One
 * subprocess per snapshot (GNU cp ≥ 9 does exactly that).
 */
export async function copyBlockFile(source: string, target: string): Promise<void> {
  await runTool('cp', ['--reflink=auto', '--sparse=auto', '--no-target-directory', source, target], `copying snapshot file ${source} to ${target}`, 'coreutils');
}

/** Why loop-mounted snapshot files cannot work here (not root, no loop devices, no mkfs), or undefined when they can. */
export async function blockfileUnavailable(fsType: BlockfileFsType = 'ext4'): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'loop mounts need root';
  if (!(await exists('/dev/loop-control'))) return 'this kernel has no loop devices (/dev/loop-control is missing)';
  try {
    await runTool('losetup', ['--find'], 'finding a free loop device', 'mount');
    await runTool(fsType === 'ext4' ? 'mkfs.ext4' : 'mkfs.xfs', ['-V'], `checking mkfs.${fsType}`, fsType === 'ext4' ? 'e2fsprogs' : 'xfsprogs');
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}

/**
 * Docker's devicemapper lines of `docker info` that mean something here: Base Device Size (each
 * snapshot file's size), the filesystem inside, mkfs arguments, and Data Space Used (blocks the
 * snapshot files take; reflinked blocks count once per file, as du counts them) and Total (the
 * backing filesystem's size), Data Space Available.
 */
export async function blockfileStatus(root: string, storageOpts: readonly string[] = []): Promise<Array<[string, string]>> {
  // A root not made yet will be made with the store's options.
  const options = (await readOptions(root).catch(() => undefined)) ?? { ...DEFAULT_BLOCKFILE_OPTIONS, ...parseBlockfileOptions(storageOpts) };
  const lines: Array<[string, string]> = [
    ['Base Device Size', String(options.size)],
    ['Filesystem', options.fsType],
    ['Mkfs Arguments', options.mkfsOptions.join(' ')],
  ];
  let used = 0;
  for (const name of await readdir(join(root, SNAPSHOTS_DIR)).catch(() => [] as string[])) {
    const st = await stat(join(root, SNAPSHOTS_DIR, name, IMAGE)).catch(() => undefined);
    if (st) used += st.blocks * 512;
  }
  lines.push(['Data file', join(root, SNAPSHOTS_DIR, '<id>', IMAGE)], ['Data Space Used', String(used)]);
  const fs = await statfs(root).catch(() => undefined);
  if (fs) lines.push(['Data Space Total', String(fs.blocks * fs.bsize)], ['Data Space Available', String(fs.bavail * fs.bsize)]);
  return lines;
}

async function readOptions(root: string): Promise<BlockfileOptions | undefined> {
  try {
    return { ...DEFAULT_BLOCKFILE_OPTIONS, ...(JSON.parse(await readFile(join(root, OPTIONS_FILE), 'utf8')) as Partial<BlockfileOptions>) };
  } catch (err) {
    if (isCode(err, 'ENOENT')) return undefined;
    throw err;
  }
}
