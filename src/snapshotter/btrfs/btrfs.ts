import { chmod, lstat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { FailedPreconditionError, StorageOptionError } from '../../errors.js';
import { optionsFor, parseSize, unknownOption } from '../storage-opts.js';
import { OWNER_LABEL } from '../temporaries.js';
import type { Mount, SnapshotOptions } from '../snapshotter.js';
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

  private constructor(
    root: string,
    readonly options: Readonly<BtrfsOptions>,
  ) {
    super(root);
  }

  static async open(root: string, options: BtrfsOptions = {}): Promise<BtrfsSnapshotter> {
    const fs = await statfs(root);
    if (fs.type !== BTRFS_SUPER_MAGIC) {
      throw new FailedPreconditionError(`btrfs snapshotter: ${root} is not on a btrfs filesystem (statfs type 0x${fs.type.toString(16)}); put the snapshot root on btrfs or use --snapshotter overlay|native`);
    }
    await btrfs(['--version'], 'btrfs-progs is needed for the btrfs snapshotter');
    // Idempotent; qgroups are what `btrfs qgroup limit` needs.
    if (options.size !== undefined) await btrfs(['quota', 'enable', root], `enabling quotas on the btrfs filesystem of ${root} (btrfs.size)`);
    const s = new BtrfsSnapshotter(root, options);
    await s.init();
    return s;
  }

  protected async createData(dir: string, kind: 'active' | 'view', parents: number[]): Promise<void> {
    // Writable even for a view: a read-only subvolume cannot be renamed into place (EROFS); sealData follows.
    if (parents.length === 0) {
      await btrfs(['subvolume', 'create', dir], `creating subvolume ${dir}`);
      await chmod(dir, 0o755);
      // The root directory's property is inherited by what is created in it, and snapshots copy it.
      if (this.options.compression !== undefined) await btrfs(['property', 'set', dir, 'compression', this.options.compression], `setting compression ${this.options.compression} on ${dir}`);
      return;
    }
    const source = this.dataDir(parents[0]!);
    await btrfs(['subvolume', 'snapshot', source, dir], `snapshotting ${source} to ${dir}`);
  }

  /**
   * A writable snapshot other than stratum's own temporaries (a layer being unpacked) gets the
   * btrfs.size limit as a qgroup limit on what its subvolume references (Docker's `size` on btrfs):
   * writing past it fails with EDQUOT.
   */
  override async prepare(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]> {
    const mounts = await super.prepare(key, parent, options);
    if (this.options.size === undefined || options?.labels?.[OWNER_LABEL] !== undefined) return mounts;
    const dir = mounts[0]!.source;
    try {
      await btrfs(['qgroup', 'limit', String(this.options.size), dir], `limiting ${dir} to ${this.options.size} bytes (btrfs.size)`);
    } catch (err) {
      await this.remove(key).catch(() => {});
      throw err;
    }
    return mounts;
  }

  /** A committed layer is not limited: btrfs copies a subvolume's qgroup limit into its snapshots, and unpack's are not to have one. */
  protected override async sealData(id: number): Promise<void> {
    if (this.options.size !== undefined) await btrfs(['qgroup', 'limit', 'none', this.dataDir(id)], `removing the size limit of ${this.dataDir(id)}`);
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

export interface BtrfsOptions {
  /** The compression property of every snapshot's subvolume: zstd, zstd:1…15, zlib, zlib:1…9, lzo, no. */
  compression?: string;
  /** Bytes a writable snapshot may reference at most (qgroup limit). */
  size?: number;
  /** Docker's btrfs.min_space: btrfs.size may not be smaller. */
  minSpace?: number;
}

const BTRFS_KEYS = ['compression', 'size', 'min_space'] as const;
const COMPRESSION = /^(?:zstd(?::(?:[1-9]|1[0-5]))?|zlib(?::[1-9])?|lzo|no|none)$/;

/** The btrfs options among a store's storage-opts: `btrfs.compression`, `btrfs.size`, `btrfs.min_space` (Docker's). */
export function parseBtrfsOptions(storageOpts: readonly string[] = []): BtrfsOptions {
  const out: BtrfsOptions = {};
  let sizeOpt: string | undefined;
  for (const opt of optionsFor('btrfs', storageOpts)) {
    if (opt.key === 'compression' || opt.key === 'compress') {
      const value = opt.value.toLowerCase();
      if (!COMPRESSION.test(value)) throw new StorageOptionError(opt.raw, 'expected zstd, zstd:1..15, zlib, zlib:1..9, lzo or no');
      out.compression = value === 'none' ? 'no' : value;
    } else if (opt.key === 'size') {
      out.size = parseSize(opt);
      sizeOpt = opt.raw;
    } else if (opt.key === 'min_space') out.minSpace = parseSize(opt);
    else throw unknownOption(opt, BTRFS_KEYS);
  }
  if (out.size !== undefined && out.minSpace !== undefined && out.size < out.minSpace) throw new StorageOptionError(sizeOpt!, `the size cannot be less than btrfs.min_space (${out.minSpace} bytes)`);
  return out;
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
