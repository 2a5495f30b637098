/**
 * The snapshotter contract (containerd's `snapshots.Snapshotter`), shared by every backend:
 * overlay, fuse-overlayfs, native, btrfs, zfs. See ../../../shared/DESIGN.md and snapshotter-conformance.md.
 */

export type Kind = 'active' | 'view' | 'committed';

export interface Info {
  kind: Kind;
  /** The key of an active or view snapshot, or the name of a committed one. */
  name: string;
  /** The committed snapshot this one is based on; undefined for a root. */
  parent?: string;
  labels: Record<string, string>;
  created: Date;
  updated: Date;
}

/** A mount as containerd describes one: `mount -t TYPE -o OPTIONS SOURCE TARGET`. */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

export interface Usage {
  /** Bytes of disk the snapshot's own data uses (not its parents'). */
  size: number;
  inodes: number;
}

export interface SnapshotOptions {
  labels?: Record<string, string>;
}

export interface CommitOptions extends SnapshotOptions {
  /**
   * Rebase (containerd 2.1's overlay capability): commit an active snapshot prepared WITHOUT a
   * parent under this committed parent. Only backends with capabilities.rebase accept it; it lets
   * overlay layers be extracted in parallel, each in its own directory.
   */
  parent?: string;
}

export type WalkFunc = (info: Info) => void | Promise<void>;

/** A disagreement between a snapshotter's metadata and its disk, found by `verify`. */
export interface SnapshotProblem {
  /** parent: a record's parent is missing or not committed; data: a record's data is missing; orphan: data no record points to. */
  kind: 'snapshot-parent' | 'snapshot-data' | 'snapshot-orphan';
  /** The snapshot key, or the orphan directory. */
  subject: string;
  message: string;
}

export interface Snapshotter {
  /** 'overlay' | 'fuse-overlayfs' | 'native' | 'btrfs' | 'zfs' | 'blockfile' | 'erofs' */
  readonly name: string;
  /** rebase: commit(…, {parent}) is supported (overlay). */
  readonly capabilities: { rebase: boolean };
  /**
   * How a layer is applied to an active snapshot of this backend: 'overlay' writes whiteouts as
   * char 0/0 devices and opaque xattrs into the snapshot's own upper directory; 'full' applies
   * deletions to a directory that already holds the parent's files (native, btrfs, zfs); 'erofs'
   * writes the layer as one EROFS image, at `layerImage(key)`, with overlay whiteouts inside.
   */
  readonly applyMode: 'overlay' | 'full' | 'erofs';
  /** 'overlay' mode only: mounts use `userxattr` (rootless), so opaque markers are `user.overlay.*`. */
  readonly userxattr?: boolean;
  /** The directory a layer is extracted into for an active snapshot (overlay: its upperdir). */
  applyDir(key: string): Promise<string>;
  /** 'erofs' mode: the file a layer's image is written to for an active snapshot; committed as the layer. */
  layerImage?(key: string): Promise<string>;
  /** Directory that holds the snapshotter's data and metadata. */
  readonly root: string;
  stat(key: string): Promise<Info>;
  /** Updates labels only. fieldpaths: none (replace all labels), or `labels` / `labels.<k>` entries. */
  update(info: Pick<Info, 'name'> & Partial<Info>, ...fieldpaths: string[]): Promise<Info>;
  usage(key: string): Promise<Usage>;
  /** Mounts of an active or view snapshot; FailedPrecondition for a committed one. */
  mounts(key: string): Promise<Mount[]>;
  prepare(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]>;
  view(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]>;
  commit(name: string, key: string, options?: CommitOptions): Promise<void>;
  remove(key: string): Promise<void>;
  /** Calls fn for every snapshot matching any of the filters (each filter: comma = AND). */
  walk(fn: WalkFunc, ...filters: string[]): Promise<void>;
  /**
   * Where a snapshot's files are on disk, as Docker's `GraphDriver.Data` names them (overlay:
   * LowerDir, UpperDir, WorkDir; the others: Dir). Optional for third-party backends.
   */
  driverData?(key: string): Promise<Record<string, string>>;
  /** Removes data that no metadata points to (left by remove or by a crash). */
  cleanup(): Promise<void>;
  /** Checks every record's parent chain and data against the disk (optional: `stratum fsck` skips a backend without it). */
  verify?(): Promise<SnapshotProblem[]>;
  close(): Promise<void>;
}
