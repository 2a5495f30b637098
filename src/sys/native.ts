/**
 * The native addon (native/*.c, built by node-gyp into build/Release/stratum.node at install).
 * C does only system calls; TypeScript keeps the logic. Every argument named `path` is RELATIVE
 * to a root directory descriptor and resolved by the kernel inside that root: parents with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), the
 * last component never followed (O_NOFOLLOW / AT_SYMLINK_NOFOLLOW). `..` components and absolute
 * paths are refused before any call; a symlink anywhere in the parent chain is refused by the
 * kernel. Both fail with UnsafePathError (ERR_UNSAFE_PATH) naming the path; other failures are
 * FsApplyError (ERR_APPLY) with the path, errno and syscall; mounts fail with MountError.
 */
import { FsApplyError, InvalidArgumentError, MountError, StratumError, UnsafePathError } from '../errors.js';
import { rawAddon, type DigestHandle, type RawAddon, type TlsConnHandle } from './addon.js';
import { encodeBatch } from './batch-encoding.js';

export interface EntryMeta {
  /** Permission bits incl. setuid/setgid/sticky (07777); set after the owner, which would clear setuid. */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds and nanoseconds since the epoch. */
  mtimeSec: number;
  mtimeNsec: number;
  /** Defaults to the mtime. */
  atimeSec?: number;
  atimeNsec?: number;
  /** name → value; set on the entry itself (also for symlinks), after the owner (chown clears security.capability). */
  xattrs?: Record<string, Buffer>;
}

/**
 * One filesystem operation of a batch; a batch is applied in order on a libuv worker thread.
 * Missing parent directories are created (0755, root-owned) for mkdir/file/symlink/hardlink/mknod.
 */
/** Paths and link targets are root-relative byte strings (src/sys/byte-path.ts): one char per byte. */
export type FsOp =
  | { op: 'mkdir'; path: string; meta: EntryMeta } // an existing directory is kept, its metadata updated; a non-directory is replaced
  | { op: 'file'; path: string; meta: EntryMeta; data: Buffer } // replaces a non-directory; a directory in the way is removed recursively
  | { op: 'symlink'; path: string; target: string; meta: EntryMeta } // same replacement rules; the target is stored, never resolved
  | { op: 'hardlink'; path: string; target: string } // target: root-relative, resolved like path; a symlink target is linked itself
  | { op: 'mknod'; path: string; kind: 'char' | 'block' | 'fifo'; major: number; minor: number; meta: EntryMeta }
  | { op: 'remove'; path: string } // recursive, never following symlinks; a missing path or parent is fine
  | { op: 'removeChildren'; path: string } // empties a directory (opaque whiteout on a full snapshot); missing or non-directory: nothing to do
  | { op: 'setxattr'; path: string; name: string; value: Buffer }
  | { op: 'times'; path: string; meta: EntryMeta }; // only the times of meta (after a directory's children landed)

export interface OverlayOptions {
  /** Newest first. At most 500 (the kernel's limit); a path over 255 bytes is passed by descriptor. */
  lowers: string[];
  upper?: string;
  work?: string;
  /** fsconfig options: 'index=off', 'userxattr', 'volatile', 'ro', … ('key=value' or a flag). */
  flags?: string[];
}

export interface DigestWriterOptions {
  dropBehind?: boolean;
  name?: string;
}

/** Writes Buffers at an fd's current position and hashes them, both on the libuv threadpool. */
export interface DigestWriter {
  readonly algorithm: 'sha256' | 'sha512';
  /** Bytes written or hashed so far. */
  readonly bytes: number;
  /** writev of all buffers (short writes finished), then the digest update. Await each call before the next. */
  write(buffers: readonly Buffer[]): Promise<void>;
  /** Hash only (re-hashing a resumed prefix read back from disk). */
  update(buffers: readonly Buffer[]): Promise<void>;
  /** Lowercase hex; finalises the writer. */
  digest(): string;
  /**
   * Receives what is ready of a native response body (native/tls.c, TLS or plain HTTP), up to
   * maxBytes, into this writer's file and hash on the pool; 0 at end of stream. A rejection
   * carries `bytes` (counted in `bytes` too): what landed before a network failure is consistent.
   */
  receiveTls(conn: TlsConnHandle, maxBytes: number): Promise<number>;
}

export interface NativeBinding {
  /** O_PATH | O_DIRECTORY descriptor of a root, for the calls below. */
  openRoot(path: string): number;
  closeFd(fd: number): void;
  /**
   * Applies ops in order off the main thread; rejects with UnsafePathError or FsApplyError naming
   * the op's path (opIndex = its index). Await a batch before sending the next one for the same root.
   */
  applyBatch(rootFd: number, ops: readonly FsOp[]): Promise<void>;
  /** Opens (creating; replacing a non-directory, removing a directory in the way) a regular file for fs.write; returns an fd the caller closes. */
  createFile(rootFd: number, path: string | Buffer, mode: number): number;
  /** fchown, fchmod, fsetxattr, futimens on an open fd (after its content was written); `path` only names it in errors. Does not close. */
  finishFile(fd: number, meta: EntryMeta, path?: string): void;
  /** llistxattr + lgetxattr of the entry itself (a symlink is not followed). */
  lgetxattrs(absPath: string | Buffer): Record<string, Buffer>;
  lsetxattr(absPath: string, name: string, value: Buffer): void;
  /** Overlay through fsopen/fsconfig (one lowerdir+ per layer)/fsmount/move_mount; read-only without an upper. */
  mountOverlay(target: string, options: OverlayOptions): void;
  /** open_tree(OPEN_TREE_CLONE) [+ mount_setattr(MOUNT_ATTR_RDONLY)] + move_mount; not recursive. */
  bindMount(source: string, target: string, readonly: boolean): void;
  /** A read-only, file-backed EROFS mount of an image file (fsopen/fsconfig source/fsmount/move_mount; kernel ≥ 6.12). */
  mountErofs(source: string, target: string): void;
  /** umount2 with UMOUNT_NOFOLLOW (| MNT_DETACH). */
  unmount(target: string, detach?: boolean): void;
  /**
   * A DigestWriter on fd (-1: hash only). With `dropBehind`, written bytes are handed to writeback
   * in 8 MiB windows and dropped from the page cache once on disk (for data not read back soon).
   * `name` (the file's path) is what write errors call the file; without it, "fd N".
   */
  createDigestWriter(fd: number, algorithm: 'sha256' | 'sha512', options?: DigestWriterOptions): DigestWriter;
  /** POSIX_FADV_DONTNEED on a byte range: clean cached pages are dropped (advisory, never fails on I/O). */
  dropCache(fd: number, offset: number, length: number): void;
  /**
   * From now on, each libuv pool thread that runs a job of this addon switches itself to
   * SCHED_BATCH (see native/addon.c): the pool's bulk work no longer preempts the main thread
   * each time it is handed a job. Process-wide; the CLI opts in, a library user may.
   */
  batchPoolThreads(): void;
}

/** The addon's error shape (native/addon.c st_error_value). */
interface RawNativeError extends Error {
  code?: string;
  path?: string;
  reason?: string;
  errno?: number;
  errnoName?: string;
  syscall?: string;
  index?: number;
}

/** Turns an addon error into the matching StratumError; anything else is returned unchanged. */
export function toStratumError(err: unknown): unknown {
  if (err instanceof StratumError || !(err instanceof Error)) return err;
  const e = err as RawNativeError;
  const details = { path: e.path ?? '', errno: e.errno, errnoName: e.errnoName, syscall: e.syscall, opIndex: e.index };
  switch (e.code) {
    case 'ERR_UNSAFE_PATH':
      return new UnsafePathError(e.message, details, { cause: err });
    case 'ERR_APPLY':
      return new FsApplyError(e.message, details, { cause: err });
    case 'ERR_MOUNT':
      return new MountError(e.message, { cause: err });
    case 'ERR_INVALID_ARGUMENT':
      return new InvalidArgumentError(e.message);
    default:
      return err;
  }
}

function typed<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw toStratumError(err);
  }
}

/** The addon refuses overlapping calls, calls after digest() and after a failed write itself (ERR_INVALID_ARGUMENT). */
class NativeDigestWriter implements DigestWriter {
  private total = 0;

  constructor(
    private readonly raw: RawAddon,
    private readonly handle: DigestHandle,
    readonly algorithm: 'sha256' | 'sha512',
  ) {}

  get bytes(): number {
    return this.total;
  }

  async write(buffers: readonly Buffer[]): Promise<void> {
    // A private copy of the list: the addon keeps it (and so every Buffer) referenced until the work is done.
    await this.count(() => this.raw.digestWrite(this.handle, buffers.slice(), true));
  }

  async update(buffers: readonly Buffer[]): Promise<void> {
    await this.count(() => this.raw.digestWrite(this.handle, buffers.slice(), false));
  }

  digest(): string {
    return typed(() => this.raw.digestFinal(this.handle));
  }

  receiveTls(conn: TlsConnHandle, maxBytes: number): Promise<number> {
    return this.count(() => this.raw.tlsReceive(conn, this.handle, maxBytes));
  }

  /** Adds what an operation wrote (or hashed) to `bytes`, also what landed before it failed. */
  private async count(op: () => Promise<number>): Promise<number> {
    try {
      const n = await op();
      if (n > 0) this.total += n;
      return n;
    } catch (err) {
      const landed = (err as { bytes?: unknown }).bytes;
      if (typeof landed === 'number') this.total += landed;
      throw toStratumError(err);
    }
  }
}

function bind(raw: RawAddon): NativeBinding {
  return {
    openRoot: (path) => typed(() => raw.openRoot(path)),
    closeFd: (fd) => typed(() => raw.closeFd(fd)),
    async applyBatch(rootFd, ops) {
      if (ops.length === 0) return;
      const { program, datas } = encodeBatch(ops);
      try {
        await raw.applyProgram(rootFd, program, datas);
      } catch (err) {
        throw toStratumError(err);
      }
    },
    createFile: (rootFd, path, mode) => typed(() => raw.createFile(rootFd, path, mode)),
    finishFile: (fd, meta, path) => typed(() => raw.finishFile(fd, meta, path)),
    lgetxattrs: (absPath) => typed(() => raw.lgetxattrs(absPath)),
    lsetxattr: (absPath, name, value) => typed(() => raw.lsetxattr(absPath, name, value)),
    mountOverlay: (target, o) => typed(() => raw.mountOverlayPaths(target, o.lowers, o.upper ?? null, o.work ?? null, o.flags ?? [])),
    bindMount: (source, target, readonly) => typed(() => raw.bindMount(source, target, readonly)),
    mountErofs: (source, target) => typed(() => raw.mountErofs(source, target)),
    unmount: (target, detach = false) => typed(() => raw.unmount(target, detach)),
    createDigestWriter(fd, algorithm, options = {}) {
      return new NativeDigestWriter(raw, typed(() => raw.digestCreate(fd, algorithm, options.dropBehind ?? false, options.name)), algorithm);
    },
    dropCache: (fd, offset, length) => typed(() => raw.dropCache(fd, offset, length)),
    batchPoolThreads: () => raw.batchPoolThreads(),
  };
}

let binding: NativeBinding | undefined;

/** The typed binding; throws NativeAddonError ("native addon not built: … run npm rebuild") when the addon is missing. */
export function loadNative(): NativeBinding {
  binding ??= bind(rawAddon());
  return binding;
}

// Free functions for callers that need one call; each loads the addon on first use.
export const openRoot = (path: string): number => loadNative().openRoot(path);
export const closeFd = (fd: number): void => loadNative().closeFd(fd);
export const applyBatch = (rootFd: number, ops: readonly FsOp[]): Promise<void> => loadNative().applyBatch(rootFd, ops);
export const createFile = (rootFd: number, path: string | Buffer, mode: number): number => loadNative().createFile(rootFd, path, mode);
export const finishFile = (fd: number, meta: EntryMeta, path?: string): void => loadNative().finishFile(fd, meta, path);
export const lgetxattrs = (absPath: string | Buffer): Record<string, Buffer> => loadNative().lgetxattrs(absPath);
export const lsetxattr = (absPath: string, name: string, value: Buffer): void => loadNative().lsetxattr(absPath, name, value);
export const mountOverlay = (target: string, options: OverlayOptions): void => loadNative().mountOverlay(target, options);
export const bindMount = (source: string, target: string, readonly: boolean): void => loadNative().bindMount(source, target, readonly);
export const unmount = (target: string, detach?: boolean): void => loadNative().unmount(target, detach);
export const createDigestWriter = (fd: number, algorithm: 'sha256' | 'sha512', options?: DigestWriterOptions): DigestWriter =>
  loadNative().createDigestWriter(fd, algorithm, options);
export const dropCache = (fd: number, offset: number, length: number): void => loadNative().dropCache(fd, offset, length);

