/**
 * Turns parsed tar entries into filesystem ops: names checked, whiteouts converted, parents
 * created, directory times deferred, big files streamed. It keeps what this layer wrote so that
 * whiteouts and opaque markers never hide the layer's own entries, whatever their order.
 */
import { closeSync, ftruncateSync, lstatSync, write as fsWrite, type BigIntStats } from 'node:fs';
import { promisify } from 'node:util';
import { LayerLimitError, UnsafeEntryError } from '../errors.js';
import { bytesOf, quoteName, readdirNamesSync, showName, underDir } from '../sys/byte-path.js';
import type { EntryMeta, NativeBinding } from '../sys/native.js';
import { ancestors, depth, isWithin, joinPath, normaliseEntryPath, parentOf } from './entry-path.js';
import { OpBatcher } from './op-batcher.js';
import type { TarEvent, TarHeader, TarTime } from '../tar/reader.js';
import type { OverlayFixups } from './types.js';
import { classifyWhiteout, isOverlayXattr, opaqueXattrName } from './whiteout.js';

const writeAsync = promisify(fsWrite);

/** Files above this size are streamed with createFile + write instead of travelling inline in a batch. */
export const INLINE_FILE_MAX = 1 << 20;
/** Linux's MAXSYMLINKS. */
const MAX_SYMLINK_FOLLOWS = 40;

type Kind = 'dir' | 'implicitDir' | 'file' | 'symlink' | 'node' | 'whiteout';

/**
 * Where a layer's entries land: the addon's calls inside a real root (nativeTarget), or another
 * tree that takes the same ops (the EROFS image builder, src/erofs). Big files come as
 * createFile, writes at increasing positions (a hole moves the position on), truncate, finishFile.
 */
export interface LayerTarget extends Pick<NativeBinding, 'applyBatch' | 'createFile' | 'finishFile'> {
  writeAt(fd: number, chunk: Buffer, position: number): Promise<void>;
  truncate(fd: number, size: number): void;
  closeFile(fd: number): void;
}

/** The addon on a real directory: fds of files created inside the root. */
export function nativeTarget(binding: NativeBinding): LayerTarget {
  return {
    applyBatch: (rootFd, ops) => binding.applyBatch(rootFd, ops),
    createFile: (rootFd, path, mode) => binding.createFile(rootFd, path, mode),
    finishFile: (fd, meta, path) => binding.finishFile(fd, meta, path),
    writeAt: writeFully,
    truncate: (fd, size) => ftruncateSync(fd, size),
    closeFile: (fd) => closeSync(fd),
  };
}

export interface LayerWriterOptions {
  mode: 'overlay' | 'full';
  /** overlay mode: false for a chain's first layer, which has nothing below to hide. */
  hasLowerLayers?: boolean;
  userxattr?: boolean;
  subject: string;
  maxEntries: number;
  maxPathLength: number;
}

function implicitDirMeta(): EntryMeta {
  const now = Date.now();
  return { mode: 0o755, uid: 0, gid: 0, mtimeSec: Math.floor(now / 1000), mtimeNsec: (now % 1000) * 1e6 };
}

export class LayerWriter {
  readonly batcher: OpBatcher;
  entries = 0;
  /** What this layer put at each path (its own entries and the parents it created). */
  private readonly written = new Map<string, Kind>();
  private readonly children = new Map<string, Set<string>>();
  private readonly dirTimes = new Map<string, EntryMeta>();
  private readonly opaqueDone = new Set<string>();
  /** full mode: directories of the layers below met as parents, with their times before this layer touched them (restored at the end, as overlayfs shows them). */
  private readonly lowerDirs = new Map<string, EntryMeta>();
  /** full mode: directories this layer made where nothing of the layers below remains. */
  private readonly newDirs = new Set<string>();
  /** full mode: lower paths this layer whited out; deleted at the end unless the layer wrote them again. */
  private readonly pendingWhiteouts = new Set<string>();
  /** This layer's symlinks (path → target): entry parents resolve through them, inside the root. */
  private readonly linkTargets = new Map<string, string>();
  /** overlay mode: directories this layer created without an entry; they take their metadata from the layers below. */
  private readonly inheritDirs = new Set<string>();
  /** overlay mode: hardlinks whose target is in a layer below (linked once the parent chain is there). */
  private readonly lowerLinks: { path: string; target: string; meta: EntryMeta }[] = [];
  /** overlay mode: whiteout devices written; one that hides nothing below must go again. */
  private readonly whiteouts = new Set<string>();
  /** The file being written; `pos` is where its next data goes (holes of a sparse file move it on). */
  private current: { header: TarHeader; path: string; meta: EntryMeta; parts: Buffer[]; bytes: number; fd?: number; pos: number; writing?: Promise<void>; holes?: true } | null = null;

  constructor(
    private readonly binding: LayerTarget,
    private readonly rootFd: number,
    private readonly rootDir: string,
    private readonly opts: LayerWriterOptions,
  ) {
    this.batcher = new OpBatcher(binding, rootFd);
  }

  async handle(ev: TarEvent): Promise<void> {
    switch (ev.kind) {
      case 'entry':
        return this.entry(ev.header);
      case 'data':
        return this.data(ev.chunk);
      case 'hole':
        return this.hole(ev.length);
      case 'entryEnd':
        return this.entryEnd();
    }
  }

  /** After the last entry: directory times, deepest first, once all their children landed. */
  async finish(): Promise<void> {
    for (const path of this.pendingWhiteouts) {
      if (this.written.get(path) === 'whiteout') this.batcher.add({ op: 'remove', path });
    }
    const times = new Map(this.lowerDirs);
    for (const [path, meta] of this.dirTimes) times.set(path, meta);
    const dirs = [...times.keys()].sort((a, b) => depth(b) - depth(a));
    for (const path of dirs) {
      this.batcher.add({ op: 'times', path, meta: times.get(path)! });
      if (this.batcher.full) await this.batcher.dispatch();
    }
    await this.batcher.flush();
  }

  /** overlay mode: what can only be finished against the layers below (see applyOverlayFixups). */
  overlayFixups(): OverlayFixups | undefined {
    if (this.inheritDirs.size === 0 && this.lowerLinks.length === 0 && this.whiteouts.size === 0) return undefined;
    return { inheritDirs: [...this.inheritDirs], lowerLinks: [...this.lowerLinks], whiteouts: [...this.whiteouts] };
  }

  /** Closes a big file left open by a failure. */
  async abort(): Promise<void> {
    const c = this.current;
    this.current = null;
    if (c?.writing) await c.writing.catch(() => {});
    if (c?.fd !== undefined) this.binding.closeFile(c.fd);
    await this.batcher.settle();
  }

  private refuse(name: string, reason: string): never {
    throw new UnsafeEntryError(this.opts.subject, showName(name), reason);
  }

  private async entry(h: TarHeader): Promise<void> {
    if (++this.entries > this.opts.maxEntries) {
      throw new LayerLimitError(this.opts.subject, 'maxEntries', this.opts.maxEntries, `entry ${quoteName(h.name)} is number ${this.entries}, which`);
    }
    if (h.name.length > this.opts.maxPathLength || h.linkname.length > this.opts.maxPathLength) {
      throw new LayerLimitError(this.opts.subject, 'maxPathLength', this.opts.maxPathLength, `entry ${quoteName(h.name.slice(0, 200))}: a name of ${Math.max(h.name.length, h.linkname.length)} bytes`);
    }
    // `/` (umoci insert at the root writes it): the root itself, as containerd takes it; other absolute names stay refused.
    const verdict = normaliseEntryPath(isRootName(h.name) ? '.' : h.name);
    if (!verdict.ok) this.refuse(h.name, verdict.reason);
    const path = this.resolve(h.name, verdict.path);
    if (path === '') {
      // The root itself (`./`): its metadata belongs to the snapshot, not to the layer.
      if (h.type !== 'dir') this.refuse(h.name, 'a non-directory entry for the root itself');
      return;
    }
    const wh = classifyWhiteout(path);
    switch (wh.kind) {
      case 'invalid':
        this.refuse(h.name, wh.reason);
      case 'meta':
        return;
      case 'whiteout':
        // Missing parents of a whiteout are made, as containerd's mkparent does: the same tree on every backend.
        this.parents(h.name, wh.target, true);
        return this.whiteout(h, wh.target);
      case 'opaque':
        this.parents(h.name, path, true);
        return this.opaque(h, wh.dir);
      case 'none':
        break;
    }
    this.parents(h.name, path);
    const meta = this.meta(h);
    switch (h.type) {
      case 'dir':
        return this.dir(path, meta);
      case 'file':
        return this.file(h, path, meta);
      case 'symlink':
        if (h.linkname === '') this.refuse(h.name, 'symlink with an empty target');
        if (h.linkname.includes('\0')) this.refuse(h.name, 'symlink target contains a NUL byte');
        await this.replaceNonDir(path);
        this.batcher.add({ op: 'symlink', path, target: h.linkname, meta });
        this.record(path, 'symlink');
        this.linkTargets.set(path, h.linkname);
        break;
      case 'hardlink':
        return this.hardlink(h, path);
      case 'char':
      case 'block':
      case 'fifo':
        await this.replaceNonDir(path);
        this.batcher.add({ op: 'mknod', path, kind: h.type, major: h.devmajor, minor: h.devminor, meta });
        this.record(path, 'node');
        break;
    }
    if (this.batcher.full) await this.batcher.dispatch();
  }

  private async data(chunk: Buffer): Promise<void> {
    const c = this.current;
    if (!c) return;
    if (c.fd === undefined) {
      c.parts.push(chunk);
      c.bytes += chunk.length;
      return;
    }
    // One write in flight while the next chunk is decompressed and parsed.
    if (c.writing) await c.writing;
    const fd = c.fd;
    const pos = c.pos;
    c.pos += chunk.length;
    c.writing = this.binding.writeAt(fd, chunk, pos);
    c.writing.catch(() => {});
  }

  /** A hole of a sparse file: zeros in a small file, a real hole (nothing written) in a streamed one. */
  private hole(length: number): void {
    const c = this.current;
    if (!c) return;
    if (c.fd === undefined) {
      c.parts.push(Buffer.alloc(length));
      c.bytes += length;
      return;
    }
    c.pos += length;
    c.holes = true;
  }

  private async entryEnd(): Promise<void> {
    const c = this.current;
    this.current = null;
    if (!c) return;
    if (c.fd === undefined) {
      const data = c.parts.length === 1 ? c.parts[0]! : Buffer.concat(c.parts, c.bytes);
      this.batcher.add({ op: 'file', path: c.path, meta: c.meta, data }, data.length + 512);
      if (this.batcher.full) await this.batcher.dispatch();
      return;
    }
    try {
      if (c.writing) await c.writing;
      // A trailing hole: the size is set, no zeros written.
      if (c.holes) this.binding.truncate(c.fd, c.pos);
      this.binding.finishFile(c.fd, c.meta, showName(c.path));
    } finally {
      this.binding.closeFile(c.fd);
    }
  }

  private async file(h: TarHeader, path: string, meta: EntryMeta): Promise<void> {
    await this.replaceNonDir(path);
    this.record(path, 'file');
    this.current = { header: h, path, meta, parts: [], bytes: 0, pos: 0 };
    if (h.size > INLINE_FILE_MAX) {
      // Its parent may still sit in an unsent batch: everything before it must be on disk first.
      await this.batcher.flush();
      this.current.fd = this.binding.createFile(this.rootFd, bytesOf(path), meta.mode);
    }
  }

  private async dir(path: string, meta: EntryMeta): Promise<void> {
    const before = this.written.get(path);
    if (before === 'whiteout') {
      // A whiteout, then a directory of that name in the same layer: a plain directory that merges with
      // the one below, as containerd's overlay applier leaves it (the device removed, no opaque marker).
      this.pendingWhiteouts.delete(path);
      if (this.opts.mode === 'full') {
        const lower = this.lowerKind(path);
        if (lower === 'dir') this.lowerDirs.delete(path);
        else this.newDirs.add(path);
      }
    } else if (before !== undefined && before !== 'dir' && before !== 'implicitDir') this.batcher.add({ op: 'remove', path });
    else if (before === undefined && this.opts.mode === 'full') {
      const lower = this.lowerKind(path);
      if (lower !== 'dir' && lower !== 'missing') this.batcher.add({ op: 'remove', path });
      if (lower === 'dir') this.lowerDirs.delete(path);
      else this.newDirs.add(path);
    }
    this.batcher.add({ op: 'mkdir', path, meta });
    this.record(path, 'dir');
    this.inheritDirs.delete(path);
    this.dirTimes.set(path, meta);
    if (this.batcher.full) await this.batcher.dispatch();
  }

  private async hardlink(h: TarHeader, path: string): Promise<void> {
    const verdict = normaliseEntryPath(h.linkname);
    if (!verdict.ok) this.refuse(h.name, `hardlink target ${quoteName(h.linkname)}: ${verdict.reason}`);
    if (verdict.path === '') this.refuse(h.name, 'hardlink to the root directory');
    const target = this.resolve(h.name, verdict.path);
    if (target === path) this.refuse(h.name, 'hardlink to itself');
    const kind = this.written.get(target);
    if (kind === 'dir' || kind === 'implicitDir') this.refuse(h.name, `hardlink to directory ${quoteName(h.linkname)}`);
    if (kind === 'whiteout') this.refuse(h.name, `hardlink target ${quoteName(h.linkname)} was deleted by this layer`);
    await this.replaceNonDir(path);
    // The link entry's times go to the shared inode, as containerd's applier sets them after os.Link.
    const meta = this.meta(h);
    if (kind === undefined && this.opts.mode === 'overlay') {
      // The target is in a layer below, which an upper directory cannot link to yet.
      this.lowerLinks.push({ path, target, meta });
      this.record(path, 'file');
      return;
    }
    this.batcher.add({ op: 'hardlink', path, target });
    this.batcher.add({ op: 'times', path, meta });
    this.record(path, 'file');
    if (this.batcher.full) await this.batcher.dispatch();
  }

  private async whiteout(h: TarHeader, target: string): Promise<void> {
    // A whiteout never hides an entry of its own layer: the entry stays.
    if (this.written.has(target)) return;
    if (this.opts.mode === 'overlay') {
      // In a chain's first layer a whiteout hides nothing: a bind-mounted view must not show a device.
      if (this.opts.hasLowerLayers !== false) {
        this.batcher.add({ op: 'mknod', path: target, kind: 'char', major: 0, minor: 0, meta: { ...this.meta(h), mode: 0, uid: 0, gid: 0, xattrs: undefined } });
        this.whiteouts.add(target);
      }
    } else {
      this.pendingWhiteouts.add(target);
      this.forgetLower(target);
    }
    this.record(target, 'whiteout');
    if (this.batcher.full) await this.batcher.dispatch();
  }

  private async opaque(h: TarHeader, dir: string): Promise<void> {
    // overlayfs ignores an opaque root (the upper root always merges), so containerd's and Docker's
    // overlay views keep every lower entry: the same on every backend.
    if (dir === '') return;
    if (this.opts.mode === 'overlay') {
      // A marker for a directory the layer has no entry for: the directory must exist to carry it.
      if (this.written.get(dir) !== 'dir') this.batcher.add({ op: 'mkdir', path: dir, meta: implicitDirMeta() });
      this.markOpaque(dir);
      return;
    }
    if (this.opaqueDone.has(dir)) return;
    this.opaqueDone.add(dir);
    if (this.newDirs.has(dir)) return; // made by this layer: nothing below to hide
    const own = this.children.get(dir);
    if (own === undefined || own.size === 0) {
      this.batcher.add({ op: 'removeChildren', path: dir });
    } else {
      // This layer already wrote entries in dir: remove only what came from below.
      await this.batcher.flush();
      this.removeLowerChildren(h.name, dir);
    }
    this.forgetLower(dir, false);
    if (this.batcher.full) await this.batcher.dispatch();
  }

  private markOpaque(dir: string): void {
    if (this.opts.hasLowerLayers === false) return; // nothing below to hide

    this.batcher.add({ op: 'setxattr', path: dir, name: opaqueXattrName(this.opts.userxattr), value: Buffer.from('y') });
  }

  private removeLowerChildren(entryName: string, dir: string): void {
    const abs = this.verifiedAbsDir(entryName, dir);
    const own = this.children.get(dir) ?? new Set<string>();
    for (const name of readdirNamesSync(abs)) {
      const child = joinPath(dir, name);
      if (!own.has(name)) {
        this.batcher.add({ op: 'remove', path: child });
        continue;
      }
      const kind = this.written.get(child);
      // A kept directory (own, or a lower one holding own entries) loses its lower contents too.
      if (kind === 'dir' || kind === 'implicitDir' || (kind === undefined && this.children.has(child))) this.removeLowerChildren(entryName, child);
    }
  }

  /** The absolute path of a directory inside the root after checking no component is a symlink. */
  private verifiedAbsDir(entryName: string, dir: string): Buffer {
    let rel = '';
    for (const part of dir === '' ? [] : dir.split('/')) {
      rel = joinPath(rel, part);
      const st = lstatSync(underDir(this.rootDir, rel));
      if (st.isSymbolicLink()) this.refuse(entryName, `${quoteName(dir)} passes through a symlink`);
      if (!st.isDirectory()) this.refuse(entryName, `${quoteName(dir)} is not a directory`);
    }
    return underDir(this.rootDir, dir);
  }

  /**
   * Resolves the parents of a root-relative path through the symlinks this layer wrote, inside the
   * root (an absolute target starts at the root, `..` stops there), as containerd resolves an entry's
   * parent in the directory it extracts into. The final component is never followed. Symlinks of the
   * layers below are not followed: a directory in this layer hides them (see parents()).
   */
  private resolve(entryName: string, path: string): string {
    if (this.linkTargets.size === 0) return path;
    const pending = path.split('/').reverse();
    const last = pending.shift()!;
    const out: string[] = [];
    let follows = 0;
    while (pending.length > 0) {
      const part = pending.pop()!;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        out.pop();
        continue;
      }
      out.push(part);
      const target = this.linkTargets.get(out.join('/'));
      if (target === undefined) continue;
      if (++follows > MAX_SYMLINK_FOLLOWS) this.refuse(entryName, `too many levels of symbolic links below ${quoteName(out.join('/'))}`);
      out.pop();
      if (target.startsWith('/')) out.length = 0;
      const parts = target.split('/');
      for (let i = parts.length - 1; i >= 0; i--) pending.push(parts[i]!);
    }
    out.push(last);
    return out.join('/');
  }

  /**
   * Makes every parent of path a directory. Missing ones are created (by the addon on the next
   * create op, or here with `explicit`, for whiteouts that create nothing). One rule on every
   * backend, the one overlayfs gives and containerd's overlay applier follows: a symlink, file or
   * device of the layers below in a parent's place is replaced by a new directory, which hides it.
   * A non-directory this layer wrote in a parent's place is refused.
   */
  private parents(entryName: string, path: string, explicit = false): void {
    let below = this.opts.mode === 'full';
    for (const a of ancestors(path)) {
      const kind = this.written.get(a);
      if (kind === 'dir' || kind === 'implicitDir') {
        if (this.newDirs.has(a)) below = false;
        continue;
      }
      if (kind === 'symlink') this.refuse(entryName, `parent ${quoteName(a)} is a symlink`);
      if (kind === 'file' || kind === 'node') this.refuse(entryName, `parent ${quoteName(a)} is not a directory`);
      if (kind === 'whiteout') {
        // Deleted earlier in this layer and now a parent again: a fresh directory that hides the old one.
        this.pendingWhiteouts.delete(a);
        this.batcher.add({ op: 'remove', path: a });
        this.batcher.add({ op: 'mkdir', path: a, meta: implicitDirMeta() });
        if (this.opts.mode === 'overlay') this.markOpaque(a);
        else this.newDirs.add(a);
        this.record(a, 'implicitDir');
        below = false;
        continue;
      }
      if (below) {
        const lower = this.lowerKind(a);
        if (lower === 'dir') {
          this.recordChild(a);
          continue;
        }
        below = false;
        if (lower !== 'missing') {
          this.forgetLower(a);
          this.batcher.add({ op: 'mkdir', path: a, meta: implicitDirMeta() });
          this.newDir(a);
          continue;
        }
      }
      if (explicit) this.batcher.add({ op: 'mkdir', path: a, meta: implicitDirMeta() });
      this.newDir(a);
    }
  }

  /** A directory this layer made without an entry of its own. */
  private newDir(path: string): void {
    this.record(path, 'implicitDir');
    if (this.opts.mode === 'overlay') this.inheritDirs.add(path);
    else this.newDirs.add(path);
  }

  /** Before writing a non-directory: an own or lower directory in the way is removed (last entry wins). */
  private async replaceNonDir(path: string): Promise<void> {
    const kind = this.written.get(path);
    this.dropPendingWithin(path);
    if (kind === 'dir' || kind === 'implicitDir') {
      this.batcher.add({ op: 'remove', path });
      this.forgetBelow(path);
    } else if (kind !== undefined && kind !== 'file') {
      this.batcher.add({ op: 'remove', path });
    } else if (kind === undefined && this.opts.mode === 'full' && this.lowerKind(path) === 'dir') {
      this.batcher.add({ op: 'remove', path });
      this.forgetLower(path);
    }
  }

  /** full mode: what a lower layer left at path (its parents are already verified directories). */
  private lowerKind(path: string): 'missing' | 'dir' | 'symlink' | 'other' {
    if (this.lowerDirs.has(path)) return 'dir';
    if (this.newDirs.has(path)) return 'missing';
    let st;
    try {
      st = lstatSync(underDir(this.rootDir, path), { bigint: true });
    } catch {
      return 'missing';
    }
    if (st.isSymbolicLink()) return 'symlink';
    if (!st.isDirectory()) return 'other';
    this.lowerDirs.set(path, timesOf(st));
    return 'dir';
  }

  private forgetLower(path: string, self = true): void {
    for (const d of this.lowerDirs.keys()) if (isWithin(d, path) && (self || d !== path)) this.lowerDirs.delete(d);
    // Emptied (self false) keeps this layer's own directories; removed (self true) takes them too.
    if (self) for (const d of this.newDirs) if (isWithin(d, path)) this.newDirs.delete(d);
  }

  /** Whiteouts at or below a path that is replaced now: the replacement removes what they would have. */
  private dropPendingWithin(path: string): void {
    if (this.pendingWhiteouts.size === 0) return;
    for (const p of this.pendingWhiteouts) if (isWithin(p, path)) this.pendingWhiteouts.delete(p);
  }

  private forgetBelow(path: string): void {
    for (const d of this.inheritDirs) if (isWithin(d, path)) this.inheritDirs.delete(d);
    for (const d of this.newDirs) if (isWithin(d, path)) this.newDirs.delete(d);
    for (const d of this.linkTargets.keys()) if (isWithin(d, path)) this.linkTargets.delete(d);
    for (const p of [...this.written.keys()]) {
      if (p !== path && isWithin(p, path)) {
        this.written.delete(p);
        this.dirTimes.delete(p);
        this.children.delete(p);
      }
    }
    this.children.delete(path);
    this.dirTimes.delete(path);
  }

  private record(path: string, kind: Kind): void {
    if (kind !== 'whiteout') this.whiteouts.delete(path);
    if (kind !== 'symlink') this.linkTargets.delete(path);
    this.written.set(path, kind);
    this.recordChild(path);
  }

  private recordChild(path: string): void {
    const parent = parentOf(path);
    let set = this.children.get(parent);
    if (!set) this.children.set(parent, (set = new Set()));
    set.add(path.slice(parent === '' ? 0 : parent.length + 1));
  }

  private meta(h: TarHeader): EntryMeta {
    const mtime = boundTime(h.mtime);
    const meta: EntryMeta = { mode: h.mode, uid: h.uid, gid: h.gid, mtimeSec: mtime.sec, mtimeNsec: mtime.nsec };
    const atime = boundTime(h.atime && laterThan(h.atime, h.mtime) ? h.atime : h.mtime);
    meta.atimeSec = atime.sec;
    meta.atimeNsec = atime.nsec;
    if (h.xattrs) {
      for (const [name, value] of Object.entries(h.xattrs)) {
        // A layer must not steer overlayfs (opaque, redirect, metacopy) through its own xattrs.
        if (isOverlayXattr(name)) continue;
        (meta.xattrs ??= {})[name] = value;
      }
    }
    return meta;
  }
}

/** containerd's applier's range: time.Unix(0, 1<<63-1), the last instant Go's UnixNano holds. */
const MAX_TIME = { sec: 9_223_372_036, nsec: 854_775_807 };
const EPOCH = { sec: 0, nsec: 0 };

/** Times before 1970 or after 2262-04-11 become the epoch, as containerd's boundTime makes them. */
function boundTime(t: TarTime): TarTime {
  if (t.sec < 0 || laterThan(t, MAX_TIME)) return EPOCH;
  return t;
}

function laterThan(a: TarTime, b: TarTime): boolean {
  return a.sec > b.sec || (a.sec === b.sec && a.nsec > b.nsec);
}

/** `/`, `//`, `/./`: a name for the root itself. */
function isRootName(name: string): boolean {
  return name.startsWith('/') && /^[/.]*$/.test(name) && !name.includes('..');
}

/** Only the times: a lower directory keeps its owner, mode and xattrs. */
function timesOf(st: BigIntStats): EntryMeta {
  const second = 1_000_000_000n;
  return { mode: 0, uid: 0, gid: 0, atimeSec: Number(st.atimeNs / second), atimeNsec: Number(st.atimeNs % second), mtimeSec: Number(st.mtimeNs / second), mtimeNsec: Number(st.mtimeNs % second) };
}

async function writeFully(fd: number, chunk: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await writeAsync(fd, chunk, off, chunk.length - off, position + off);
    off += bytesWritten;
  }
}
