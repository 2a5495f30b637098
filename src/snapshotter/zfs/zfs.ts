import { execFile } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { chmod, mkdir, readdir, readlink, rmdir, symlink } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { FailedPreconditionError, StorageOptionError, StoreError } from '../../errors.js';
import { optionsFor, parseSize, unknownOption } from '../storage-opts.js';
import { diskUsage, isPidAlive, ownerPid, REMOVAL_DIR, removeTree, SNAPSHOTS_DIR, STAGING_DIR } from '../fsutil.js';
import { runTool, toolFailure } from '../command.js';
import { FullTreeSnapshotter } from '../full-tree.js';
import type { Usage } from '../snapshotter.js';
import { ensurePrivateDir } from '../../sys/mkdir-all.js';

const run = promisify(execFile);

/** Mountpoints of the snapshots' datasets, named like their staging directories and never renamed. */
const TREES_DIR = 'trees';
/** In a snapshot's data directory: a symlink to its dataset's mountpoint. */
const TREE_LINK = 'fs';
/** The ZFS snapshot a commit takes; children are clones of it. */
const COMMITTED = 'committed';
/**
 * `zfs destroy` right after a mount or clone often answers "dataset is busy" for a moment
 * (zfs-fuse); on a loaded machine the moment lasts seconds. About 20 s in all.
 */
const BUSY_RETRY_MS = [250, 500, 1000, 2000, 2000, 4000, 4000, 6000];

/**
 * containerd's zfs snapshotter: snapshot `id` is a dataset under the dataset mounted at the
 * snapshotter root. Prepare on a parent clones the parent's `@committed` snapshot (no data
 * copied); commit takes that snapshot; a view is a clone mounted read-only. Layers are applied in full (whiteouts become deletions); mounts are bind mounts.
 *
 * A dataset is never renamed (a rename right after writing is refused as busy): it is created
 * mounted at `trees/<name>`, and the snapshot's data directory, which the base class stages and
 * renames, holds only a symlink `fs` to it. Datasets are made and destroyed with `zfs`.
 */
export class ZfsSnapshotter extends FullTreeSnapshotter {
  readonly name = 'zfs';

  private constructor(
    root: string,
    /** The dataset mounted at the root; snapshots are its children. */
    readonly dataset: string,
  ) {
    super(root);
  }

  static async open(root: string, options: ZfsOptions = {}): Promise<ZfsSnapshotter> {
    const dataset = await datasetMountedAt(resolve(root));
    if (options.fsname !== undefined && dataset !== options.fsname && !dataset.startsWith(`${options.fsname}/`)) {
      throw new StorageOptionError(`zfs.fsname=${options.fsname}`, `the snapshot root ${root} is dataset ${dataset}, which is not under ${options.fsname}`);
    }
    await setDatasetProperties(dataset, options);
    const s = new ZfsSnapshotter(root, dataset);
    await s.init();
    await ensurePrivateDir(join(root, TREES_DIR));
    return s;
  }

  protected override treeDir(id: number): string {
    return readlinkSync(join(this.dataDir(id), TREE_LINK));
  }

  protected async createData(dir: string, _kind: 'active' | 'view', parents: number[]): Promise<void> {
    const name = basename(dir);
    const tree = join(this.root, TREES_DIR, name);
    const dataset = `${this.dataset}/${name}`;
    if (parents.length === 0) {
      await zfs(['create', '-o', `mountpoint=${tree}`, dataset], `creating dataset ${dataset}`);
      await chmod(tree, 0o755);
    } else {
      const origin = `${this.datasetOf(parents[0]!)}@${COMMITTED}`;
      await zfs(['clone', '-o', `mountpoint=${tree}`, origin, dataset], `cloning ${origin} to ${dataset}`);
    }
    await mkdir(dir);
    await symlink(tree, join(dir, TREE_LINK));
  }

  /**
   * Commit takes the snapshot that children clone (a view gets one too, unused). The dataset is
   * not set readonly=on: zfs-fuse then fails every xattr listing in it (EOPNOTSUPP). Views are
   * read-only through their mounts, and children see the snapshot, not later writes.
   */
  protected override async sealData(id: number): Promise<void> {
    const dataset = this.datasetOf(id);
    await zfs(['snapshot', `${dataset}@${COMMITTED}`], `snapshotting ${dataset}`);
  }

  protected override async deleteData(path: string): Promise<void> {
    const tree = await readlink(join(path, TREE_LINK)).catch(() => undefined);
    if (tree !== undefined) {
      await destroyDataset(`${this.dataset}/${basename(tree)}`);
      await rmdir(tree).catch(() => {});
    }
    await removeTree(path);
  }

  /** Files count their size: zfs-fuse reports a file's blocks long after it was written (3 MiB showed as 512 bytes). */
  protected override dataUsage(id: number): Promise<Usage> {
    return diskUsage(this.treeDir(id), { apparent: true });
  }

  /** Also destroys datasets nothing points to (a process that died between creating one and recording it). */
  override async cleanup(): Promise<void> {
    await super.cleanup();
    const referenced = new Set<string>();
    for (const area of [SNAPSHOTS_DIR, STAGING_DIR, REMOVAL_DIR]) {
      for (const name of await readdir(join(this.root, area)).catch(() => [] as string[])) {
        const tree = await readlink(join(this.root, area, name, TREE_LINK)).catch(() => undefined);
        if (tree !== undefined) referenced.add(basename(tree));
      }
    }
    const stdout = await zfs(['list', '-H', '-o', 'name', '-d', '1', '-t', 'filesystem', this.dataset], `listing the datasets under ${this.dataset}`);
    for (const dataset of stdout.split('\n').filter((d) => d.startsWith(`${this.dataset}/`))) {
      const name = dataset.slice(this.dataset.length + 1);
      const pid = ownerPid(name);
      // Ours may be between its create and its staging directory; another live process's likewise.
      if (referenced.has(name) || pid === undefined || pid === process.pid || isPidAlive(pid)) continue;
      await destroyDataset(dataset);
      await rmdir(join(this.root, TREES_DIR, name)).catch(() => {});
    }
  }

  private datasetOf(id: number): string {
    return `${this.dataset}/${basename(this.treeDir(id))}`;
  }
}

export interface ZfsOptions {
  /** `compression` of the parent dataset, inherited by every snapshot's dataset (off, lz4, zstd, gzip-9…). */
  compression?: string;
  /** `recordsize` of the parent dataset in bytes, inherited likewise. */
  recordsize?: number;
  /** Docker's zfs.fsname: the dataset under which stratum makes its own. */
  fsname?: string;
}

const ZFS_KEYS = ['compression', 'recordsize', 'fsname'] as const;
const COMPRESSION = /^(?:on|off|lzjb|zle|lz4|gzip(?:-[1-9])?|zstd(?:-(?:[1-9]|1[0-9]))?|zstd-fast(?:-\d+)?)$/;

/** The zfs options among a store's storage-opts: `zfs.compression`, `zfs.recordsize`, `zfs.fsname` (Docker's). */
export function parseZfsOptions(storageOpts: readonly string[] = []): ZfsOptions {
  const out: ZfsOptions = {};
  for (const opt of optionsFor('zfs', storageOpts)) {
    if (opt.key === 'compression') {
      const value = opt.value.toLowerCase();
      if (!COMPRESSION.test(value)) throw new StorageOptionError(opt.raw, 'expected off, on, lz4, zstd[-1..19], gzip[-1..9], lzjb or zle');
      out.compression = value;
    } else if (opt.key === 'recordsize') {
      const size = parseSize(opt);
      if (size < 512 || size > 16 << 20 || (size & (size - 1)) !== 0) throw new StorageOptionError(opt.raw, 'expected a power of two from 512 to 16M (e.g. 128K)');
      out.recordsize = size;
    } else if (opt.key === 'fsname') {
      if (!/^[A-Za-z0-9][A-Za-z0-9_.:/-]*$/.test(opt.value) || opt.value.endsWith('/')) throw new StorageOptionError(opt.raw, 'expected a dataset name (POOL or POOL/NAME)');
      out.fsname = opt.value;
    } else throw unknownOption(opt, ZFS_KEYS);
  }
  return out;
}

/**
 * Sets compression and recordsize on the parent dataset where they differ: every snapshot's
 * dataset is made under it and inherits them (a clone inherits from its parent dataset too).
 */
export async function setDatasetProperties(dataset: string, options: ZfsOptions): Promise<void> {
  const wanted: Array<[string, string, string]> = [];
  if (options.compression !== undefined) wanted.push(['compression', options.compression, `zfs.compression=${options.compression}`]);
  if (options.recordsize !== undefined) wanted.push(['recordsize', String(options.recordsize), `zfs.recordsize=${options.recordsize}`]);
  for (const [property, value, option] of wanted) {
    const current = (await zfs(['get', '-H', '-p', '-o', 'value', property, dataset], `reading ${property} of ${dataset}`)).trim();
    if (current === value) continue;
    try {
      await zfs(['set', `${property}=${value}`, dataset], `setting ${property}=${value} on ${dataset}`);
    } catch (err) {
      throw new StorageOptionError(option, `zfs refused it on ${dataset}: ${(err as Error).message}`);
    }
  }
}

/** The ZFS filesystem whose mountpoint is `root` exactly. */
async function datasetMountedAt(root: string): Promise<string> {
  let stdout: string;
  try {
    ({ stdout } = await run('zfs', ['list', '-H', '-o', 'name,mountpoint', '-t', 'filesystem'], { maxBuffer: 16 << 20 }));
  } catch (err) {
    throw new FailedPreconditionError(`zfs snapshotter: cannot list ZFS datasets: ${toolFailure('zfs', err, 'zfs-fuse or zfsutils-linux')}`);
  }
  for (const line of stdout.split('\n')) {
    const [name, mountpoint] = line.split('\t');
    if (name && mountpoint === root) return name;
  }
  throw new FailedPreconditionError(`zfs snapshotter: ${root} is not the mountpoint of a ZFS dataset; create one (zfs create -o mountpoint=${root} POOL/NAME) or use --snapshotter overlay|native`);
}

/**
 * `zfs destroy -r`, retried while the dataset is busy; a dataset that is gone already is fine.
 * `force` (`-f`) unmounts what is still mounted first: for throwaway datasets (tests' roots) only.
 */
export async function destroyDataset(dataset: string, options: { force?: boolean } = {}): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await run('zfs', ['destroy', '-r', ...(options.force ? ['-f'] : []), dataset]);
      return;
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? '';
      if (/does not exist/.test(stderr)) return;
      if (/busy/.test(stderr) && attempt < BUSY_RETRY_MS.length) {
        await sleep(BUSY_RETRY_MS[attempt]!);
        continue;
      }
      throw new StoreError(`destroying dataset ${dataset}: ${stderr.trim() || (err as Error).message}`, { cause: err });
    }
  }
}

function zfs(args: string[], what: string): Promise<string> {
  return runTool('zfs', args, what, 'zfs-fuse or zfsutils-linux');
}
