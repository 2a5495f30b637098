/**
 * CONTRACT (being implemented): the native addon `native/stratum.node`, built by node-gyp at
 * install. C does only system calls; TypeScript keeps the logic. Every path argument named
 * `path` is RELATIVE to a root directory descriptor and is resolved by the kernel inside that
 * root (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS for the
 * parent; the last component is never followed: O_NOFOLLOW / AT_SYMLINK_NOFOLLOW). A path that
 * would leave the root, or crosses a symlink, fails with an error naming the path.
 */

export interface EntryMeta {
  /** Permission bits incl. setuid/setgid/sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds and nanoseconds since the epoch. */
  mtimeSec: number;
  mtimeNsec: number;
  atimeSec?: number;
  atimeNsec?: number;
  /** name → value; set with lsetxattr (on the entry itself, also for symlinks). */
  xattrs?: Record<string, Buffer>;
}

/** One filesystem operation of a batch; a batch is applied in order on a worker thread. */
export type FsOp =
  | { op: 'mkdir'; path: string; meta: EntryMeta } // an existing directory is kept, its metadata updated
  | { op: 'file'; path: string; meta: EntryMeta; data: Buffer } // replaces whatever non-directory is there
  | { op: 'symlink'; path: string; target: string; meta: EntryMeta }
  | { op: 'hardlink'; path: string; target: string } // target: root-relative, resolved like path
  | { op: 'mknod'; path: string; kind: 'char' | 'block' | 'fifo'; major: number; minor: number; meta: EntryMeta }
  | { op: 'remove'; path: string } // recursive, never following symlinks; missing is fine
  | { op: 'removeChildren'; path: string } // empties a directory (opaque whiteout on a full snapshot)
  | { op: 'setxattr'; path: string; name: string; value: Buffer }
  | { op: 'times'; path: string; meta: EntryMeta }; // set times (after a directory's children landed)

export interface NativeBinding {
  /** O_PATH | O_DIRECTORY descriptor of a root, for the calls below. */
  openRoot(path: string): number;
  closeFd(fd: number): void;
  /** Applies ops in order off the main thread; rejects with an error whose message names the op's path. */
  applyBatch(rootFd: number, ops: FsOp[]): Promise<void>;
  /** Opens (creating or replacing a non-directory) a regular file for writing with fs.write; returns an fd. */
  createFile(rootFd: number, path: string, mode: number): number;
  /** Sets owner, mode, times and xattrs on an open fd (after its content was written). */
  finishFile(fd: number, meta: EntryMeta): void;
  lgetxattrs(absPath: string): Record<string, Buffer>;
  /** Overlay through fsopen/fsconfig (one lowerdir+ per layer)/fsmount/move_mount. */
  mountOverlay(target: string, options: { lowers: string[]; upper?: string; work?: string; flags?: string[] }): void;
  bindMount(source: string, target: string, readonly: boolean): void;
  unmount(target: string, detach?: boolean): void;
}
