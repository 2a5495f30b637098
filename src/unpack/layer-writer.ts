/**
 * Turns parsed tar entries into filesystem ops: names checked, whiteouts converted, parents
 * created, directory times deferred, big files streamed. It keeps what this layer wrote so that
 * whiteouts and opaque markers never hide the layer's own entries, whatever their order.
 */
import { closeSync, ftruncateSync, lstatSync, readdirSync, write as fsWrite } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LayerLimitError, UnsafeEntryError } from '../errors.js';
import type { EntryMeta, NativeBinding } from '../sys/native.js';
import { ancestors, depth, isWithin, joinPath, normaliseEntryPath, parentOf } from './entry-path.js';
import { OpBatcher } from './op-batcher.js';
import type { TarEvent, TarHeader } from './tar-reader.js';
import type { OverlayFixups } from './types.js';
import { classifyWhiteout, isOverlayXattr, opaqueXattrName } from './whiteout.js';

const writeAsync = promisify(fsWrite);

/** Files above this size are streamed with createFile + write instead of travelling inline in a batch. */
export const INLINE_FILE_MAX = 1 << 20;

type Kind = 'dir' | 'implicitDir' | 'file' | 'symlink' | 'node' | 'whiteout';

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
  /** full mode: ancestors found on disk as real directories (from lower layers). */
  private readonly lowerDirs = new Set<string>();
  /** overlay mode: directories this layer created without an entry; they take their metadata from the layers below. */
  private readonly inheritDirs = new Set<string>();
  /** overlay mode: hardlinks whose target is in a layer below (linked once the parent chain is there). */
  private readonly lowerLinks: { path: string; target: string }[] = [];
  /** overlay mode: whiteout devices written; one that hides nothing below must go again. */
  private readonly whiteouts = new Set<string>();
  /** The file being written; `pos` is where its next data goes (holes of a sparse file move it on). */
  private current: { header: TarHeader; path: string; meta: EntryMeta; parts: Buffer[]; bytes: number; fd?: number; pos: number; writing?: Promise<void>; holes?: true } | null = null;

  constructor(
    private readonly binding: NativeBinding,
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
    const dirs = [...this.dirTimes.keys()].sort((a, b) => depth(b) - depth(a));
    for (const path of dirs) {
      this.batcher.add({ op: 'times', path, meta: this.dirTimes.get(path)! });
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
    if (c?.fd !== undefined) closeSync(c.fd);
    await this.batcher.settle();
  }

  private refuse(name: string, reason: string): never {
    throw new UnsafeEntryError(this.opts.subject, name, reason);
  }

  private async entry(h: TarHeader): Promise<void> {
    if (++this.entries > this.opts.maxEntries) {
      throw new LayerLimitError(this.opts.subject, 'maxEntries', this.opts.maxEntries, `entry ${JSON.stringify(h.name)} is number ${this.entries}, which`);
    }
    if (Buffer.byteLength(h.name) > this.opts.maxPathLength || Buffer.byteLength(h.linkname) > this.opts.maxPathLength) {
      throw new LayerLimitError(this.opts.subject, 'maxPathLength', this.opts.maxPathLength, `entry ${JSON.stringify(h.name.slice(0, 200))}: a name of ${Math.max(Buffer.byteLength(h.name), Buffer.byteLength(h.linkname))} bytes`);
    }
    const verdict = normaliseEntryPath(h.name);
    if (!verdict.ok) this.refuse(h.name, verdict.reason);
    const path = verdict.path;
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
        // full mode: a whiteout under a missing directory has nothing to delete.
        if (!(await this.parents(h.name, wh.target, this.opts.mode === 'overlay'))) return;
        return this.whiteout(h, wh.target);
      case 'opaque':
        if (!(await this.parents(h.name, path, this.opts.mode === 'overlay'))) return;
        return this.opaque(h, wh.dir);
      case 'none':
        break;
    }
    await this.parents(h.name, path);
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
    c.writing = writeFully(fd, chunk, pos);
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
      if (c.holes) ftruncateSync(c.fd, c.pos);
      this.binding.finishFile(c.fd, c.meta);
    } finally {
      closeSync(c.fd);
    }
  }

  private async file(h: TarHeader, path: string, meta: EntryMeta): Promise<void> {
    await this.replaceNonDir(path);
    this.record(path, 'file');
    this.current = { header: h, path, meta, parts: [], bytes: 0, pos: 0 };
    if (h.size > INLINE_FILE_MAX) {
      // Its parent may still sit in an unsent batch: everything before it must be on disk first.
      await this.batcher.flush();
      this.current.fd = this.binding.createFile(this.rootFd, path, meta.mode);
    }
  }

  private async dir(path: string, meta: EntryMeta): Promise<void> {
    const before = this.written.get(path);
    const replacedWhiteout = before === 'whiteout';
    if (before !== undefined && before !== 'dir' && before !== 'implicitDir') this.batcher.add({ op: 'remove', path });
    else if (before === undefined && this.opts.mode === 'full') {
      const lower = this.lowerKind(path);
      if (lower !== 'dir' && lower !== 'missing') this.batcher.add({ op: 'remove', path });
    }
    this.batcher.add({ op: 'mkdir', path, meta });
    this.record(path, 'dir');
    this.inheritDirs.delete(path);
    this.dirTimes.set(path, meta);
    // A whiteout and a directory of the same name in one layer: the new directory replaces the old one whole.
    if (replacedWhiteout && this.opts.mode === 'overlay') this.markOpaque(path);
    if (this.batcher.full) await this.batcher.dispatch();
  }

  private async hardlink(h: TarHeader, path: string): Promise<void> {
    const verdict = normaliseEntryPath(h.linkname);
    if (!verdict.ok) this.refuse(h.name, `hardlink target ${JSON.stringify(h.linkname)}: ${verdict.reason}`);
    const target = verdict.path;
    if (target === '') this.refuse(h.name, 'hardlink to the root directory');
    if (target === path) this.refuse(h.name, 'hardlink to itself');
    for (const a of ancestors(target)) {
      const k = this.written.get(a);
      if (k === 'symlink') this.refuse(h.name, `hardlink target ${JSON.stringify(h.linkname)} passes through symlink ${JSON.stringify(a)}`);
    }
    const kind = this.written.get(target);
    if (kind === 'dir' || kind === 'implicitDir') this.refuse(h.name, `hardlink to directory ${JSON.stringify(h.linkname)}`);
    if (kind === 'whiteout') this.refuse(h.name, `hardlink target ${JSON.stringify(h.linkname)} was deleted by this layer`);
    await this.replaceNonDir(path);
    if (kind === undefined && this.opts.mode === 'overlay') {
      // The target is in a layer below, which an upper directory cannot link to yet.
      this.lowerLinks.push({ path, target });
      this.record(path, 'file');
      return;
    }
    this.batcher.add({ op: 'hardlink', path, target });
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
      this.batcher.add({ op: 'remove', path: target });
      this.forgetLower(target);
    }
    this.record(target, 'whiteout');
    if (this.batcher.full) await this.batcher.dispatch();
  }

  private async opaque(h: TarHeader, dir: string): Promise<void> {
    if (this.opts.mode === 'overlay') {
      // A marker for a directory the layer has no entry for: the directory must exist to carry it.
      if (dir !== '' && this.written.get(dir) !== 'dir') this.batcher.add({ op: 'mkdir', path: dir, meta: implicitDirMeta() });
      this.markOpaque(dir);
      return;
    }
    if (this.opaqueDone.has(dir)) return;
    this.opaqueDone.add(dir);
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
    for (const name of readdirSync(abs)) {
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
  private verifiedAbsDir(entryName: string, dir: string): string {
    let abs = this.rootDir;
    for (const part of dir === '' ? [] : dir.split('/')) {
      abs = join(abs, part);
      const st = lstatSync(abs);
      if (st.isSymbolicLink()) this.refuse(entryName, `${JSON.stringify(dir)} passes through a symlink`);
      if (!st.isDirectory()) this.refuse(entryName, `${JSON.stringify(dir)} is not a directory`);
    }
    return abs;
  }

  /**
   * Checks every parent of path, creating the missing ones (or, without `create`, returning false
   * at the first missing one); refuses a symlink or non-directory on the way.
   */
  private async parents(entryName: string, path: string, create = true): Promise<boolean> {
    for (const a of ancestors(path)) {
      const kind = this.written.get(a);
      if (kind === 'dir' || kind === 'implicitDir') continue;
      if (kind === 'symlink') this.refuse(entryName, `parent ${JSON.stringify(a)} is a symlink`);
      if (kind === 'file' || kind === 'node') this.refuse(entryName, `parent ${JSON.stringify(a)} is not a directory`);
      if (kind === 'whiteout') {
        if (!create) return false;
        // Deleted earlier in this layer and now a parent again: a fresh directory that hides the old one.
        this.batcher.add({ op: 'remove', path: a });
        this.batcher.add({ op: 'mkdir', path: a, meta: implicitDirMeta() });
        if (this.opts.mode === 'overlay') this.markOpaque(a);
        this.record(a, 'implicitDir');
        continue;
      }
      if (this.opts.mode === 'full') {
        const lower = this.lowerKind(a);
        if (lower === 'symlink') this.refuse(entryName, `parent ${JSON.stringify(a)} is a symlink`);
        if (lower === 'other') this.refuse(entryName, `parent ${JSON.stringify(a)} is not a directory`);
        if (lower === 'dir') {
          this.recordChild(a);
          continue;
        }
      }
      if (!create) return false;
      // The addon creates missing parents (0755, owned by us) on the way; no op needed.
      this.record(a, 'implicitDir');
      if (this.opts.mode === 'overlay') this.inheritDirs.add(a);
    }
    return true;
  }

  /** Before writing a non-directory: an own or lower directory in the way is removed (last entry wins). */
  private async replaceNonDir(path: string): Promise<void> {
    const kind = this.written.get(path);
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
    let st;
    try {
      st = lstatSync(join(this.rootDir, path));
    } catch {
      return 'missing';
    }
    if (st.isSymbolicLink()) return 'symlink';
    if (!st.isDirectory()) return 'other';
    this.lowerDirs.add(path);
    return 'dir';
  }

  private forgetLower(path: string, self = true): void {
    for (const d of this.lowerDirs) if (isWithin(d, path) && (self || d !== path)) this.lowerDirs.delete(d);
  }

  private forgetBelow(path: string): void {
    for (const d of this.inheritDirs) if (isWithin(d, path)) this.inheritDirs.delete(d);
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
    const meta: EntryMeta = { mode: h.mode, uid: h.uid, gid: h.gid, mtimeSec: h.mtime.sec, mtimeNsec: h.mtime.nsec };
    const atime = h.atime ?? h.mtime;
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

async function writeFully(fd: number, chunk: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await writeAsync(fd, chunk, off, chunk.length - off, position + off);
    off += bytesWritten;
  }
}
