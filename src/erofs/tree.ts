import { ErofsError } from '../errors.js';
import { baseName, parentOf } from '../unpack/entry-path.js';
import type { LayerTarget } from '../unpack/layer-writer.js';
import { quoteName } from '../sys/byte-path.js';
import type { EntryMeta, FsOp } from '../sys/native.js';
import type { DataArea } from './data-area.js';
import { BLOCK_SIZE, encodeDev, encodeXattrName, EXTENDED_INODE_SIZE, MAX_NAME_LEN, xattrIbodySize, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG } from './format.js';

/** One inode of the image being built; hardlinked names share the object. */
export interface Node {
  /** Type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  mtimeSec: number;
  mtimeNsec: number;
  /** name (byte string) → value. */
  xattrs: Map<string, Buffer>;
  /** Directories: name (byte string) → child. */
  children?: Map<string, Node>;
  /** Files: bytes; symlinks: the target's length. */
  size: number;
  /** Files: first block of the data written to the data area (full blocks, and the tail unless held). */
  blkaddr: number;
  /** Files: the last partial block, held for inlining after the inode; symlinks: the target. */
  tail?: Buffer;
  rdev: number;
}

/** A file being streamed (createFile → writeAt… → finishFile). */
interface OpenFile {
  node: Node;
  written: number;
}

/**
 * The image's tree in memory, as a LayerTarget: LayerWriter (overlay mode) sends it the same ops it
 * sends the addon for a real upper directory, so names, whiteouts, refusals and "last entry wins"
 * are decided once for every backend. File data goes straight to the data area as it arrives;
 * only the metadata (and the tails of small files, within a budget) stays in memory.
 */
export class ErofsTree implements LayerTarget {
  readonly root: Node;
  private readonly open = new Map<number, OpenFile>();
  private nextFd = 1;
  /** Bytes of file tails still allowed in memory. */
  private tailBudget: number;

  constructor(
    private readonly data: DataArea,
    private readonly subject: string,
    options: { tailBudget?: number; now?: { sec: number; nsec: number } } = {},
  ) {
    this.tailBudget = options.tailBudget ?? 64 << 20;
    const now = options.now ?? nowTime();
    this.root = dirNode({ mode: 0o755, uid: 0, gid: 0, mtimeSec: now.sec, mtimeNsec: now.nsec });
  }

  async applyBatch(_rootFd: number, ops: readonly FsOp[]): Promise<void> {
    for (const op of ops) this.apply(op);
    await this.data.room();
  }

  createFile(_rootFd: number, path: string | Buffer, mode: number): number {
    const rel = typeof path === 'string' ? path : path.toString('latin1');
    const node = fileNode({ mode, uid: 0, gid: 0, mtimeSec: 0, mtimeNsec: 0 });
    node.blkaddr = this.data.begin();
    this.place(rel, node);
    const fd = this.nextFd++;
    this.open.set(fd, { node, written: 0 });
    return fd;
  }

  async writeAt(fd: number, chunk: Buffer, position: number): Promise<void> {
    const f = this.openFile(fd);
    if (position < f.written) throw new ErofsError(`${this.subject}: file data out of order (at ${position}, after ${f.written})`);
    this.data.zeros(position - f.written);
    this.data.append(chunk);
    f.written = position + chunk.length;
    await this.data.room();
  }

  truncate(fd: number, size: number): void {
    const f = this.openFile(fd);
    if (size > f.written) this.data.zeros(size - f.written);
    f.written = Math.max(f.written, size);
  }

  finishFile(fd: number, meta: EntryMeta): void {
    const f = this.openFile(fd);
    f.node.size = f.written;
    setMeta(f.node, meta);
  }

  closeFile(fd: number): void {
    this.open.delete(fd);
  }

  /** The node at a path, or undefined (no symlink is followed: the tree holds no symlinked parents). */
  lookup(path: string): Node | undefined {
    let node: Node | undefined = this.root;
    if (path === '') return node;
    for (const part of path.split('/')) {
      node = node?.children?.get(part);
      if (node === undefined) return undefined;
    }
    return node;
  }

  /** A new regular file at `path` with data already in hand (or from a stream: see addStreamedFile). */
  addFile(path: string, meta: EntryMeta, data: Buffer): void {
    const node = fileNode(meta);
    node.size = data.length;
    const full = data.length - (data.length % BLOCK_SIZE);
    const tail = data.length - full;
    // A tail is kept for the metadata area when it fits in a block beside the largest inode and its xattrs.
    const keep = tail > 0 && tail <= this.tailBudget && EXTENDED_INODE_SIZE + this.xattrBytes(node) + tail <= BLOCK_SIZE;
    if (full > 0 || !keep) node.blkaddr = this.data.begin();
    if (keep) {
      if (full > 0) this.data.append(data.subarray(0, full));
      // A copy: the data may be a view of a large chunk of the tar stream.
      node.tail = Buffer.from(data.subarray(full));
      this.tailBudget -= tail;
    } else {
      this.data.append(data);
    }
    this.place(path, node);
  }

  /** A new regular file at `path` whose data comes from a stream (a copy-up, a directory's file at commit). */
  async addStreamedFile(path: string, meta: EntryMeta, source: AsyncIterable<Buffer>): Promise<void> {
    const fd = this.createFile(0, path, meta.mode);
    try {
      let pos = 0;
      for await (const chunk of source) {
        await this.writeAt(fd, chunk, pos);
        pos += chunk.length;
      }
      this.finishFile(fd, meta);
    } finally {
      this.closeFile(fd);
    }
  }

  remove(path: string): void {
    if (path === '') throw new ErofsError(`${this.subject}: the root cannot be removed`);
    this.parentDir(path, false)?.children!.delete(baseName(path));
  }

  private apply(op: FsOp): void {
    switch (op.op) {
      case 'mkdir': {
        const existing = this.lookup(op.path);
        if (existing?.children) setMeta(existing, op.meta);
        else this.place(op.path, dirNode(op.meta));
        return;
      }
      case 'file':
        return this.addFile(op.path, op.meta, op.data);
      case 'symlink': {
        const node = newNode(S_IFLNK | 0o777, op.meta);
        node.tail = Buffer.from(op.target, 'latin1');
        node.size = node.tail.length;
        return this.place(op.path, node);
      }
      case 'mknod': {
        const type = op.kind === 'char' ? S_IFCHR : op.kind === 'block' ? S_IFBLK : S_IFIFO;
        const node = newNode(type | (op.meta.mode & 0o7777), op.meta);
        if (op.kind !== 'fifo') node.rdev = encodeDev(op.major, op.minor);
        return this.place(op.path, node);
      }
      case 'hardlink': {
        const target = this.lookup(op.target);
        if (target === undefined) throw new ErofsError(`${this.subject}: hardlink ${quoteName(op.path)}: target ${quoteName(op.target)} does not exist`);
        if (target.children) throw new ErofsError(`${this.subject}: hardlink ${quoteName(op.path)}: target ${quoteName(op.target)} is a directory`);
        return this.place(op.path, target);
      }
      case 'remove':
        return this.remove(op.path);
      case 'removeChildren': {
        this.lookup(op.path)?.children?.clear();
        return;
      }
      case 'setxattr': {
        const node = this.mustFind(op.path);
        node.xattrs.set(op.name, op.value);
        return;
      }
      case 'times': {
        const node = this.mustFind(op.path);
        node.mtimeSec = op.meta.mtimeSec;
        node.mtimeNsec = op.meta.mtimeNsec;
        return;
      }
    }
  }

  private mustFind(path: string): Node {
    const node = this.lookup(path);
    if (node === undefined) throw new ErofsError(`${this.subject}: ${quoteName(path)} does not exist`);
    return node;
  }

  /** Puts `node` at `path`, replacing what was there (a directory in the way goes with its contents). */
  private place(path: string, node: Node): void {
    const name = baseName(path);
    if (name.length > MAX_NAME_LEN) throw new ErofsError(`${this.subject}: ${quoteName(path)}: a name longer than ${MAX_NAME_LEN} bytes`);
    this.parentDir(path, true)!.children!.set(name, node);
  }

  /** The directory holding `path`; missing parents are made (0755, root-owned) when `create`. */
  private parentDir(path: string, create: boolean): Node | undefined {
    const dir = parentOf(path);
    let node = this.root;
    if (dir === '') return node;
    for (const part of dir.split('/')) {
      let child = node.children!.get(part);
      if (child === undefined) {
        if (!create) return undefined;
        const now = nowTime();
        child = dirNode({ mode: 0o755, uid: 0, gid: 0, mtimeSec: now.sec, mtimeNsec: now.nsec });
        node.children!.set(part, child);
      } else if (!child.children) {
        throw new ErofsError(`${this.subject}: ${quoteName(path)}: parent ${quoteName(part)} is not a directory`);
      }
      node = child;
    }
    return node;
  }

  private openFile(fd: number): OpenFile {
    const f = this.open.get(fd);
    if (f === undefined) throw new ErofsError(`${this.subject}: write to a file that is not open (${fd})`);
    return f;
  }

  private xattrBytes(node: Node): number {
    return xattrIbodySize([...node.xattrs].map(([name, value]) => encodeXattrName(name, value, this.subject)));
  }
}

function nowTime(): { sec: number; nsec: number } {
  const ms = Date.now();
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1e6 };
}

function newNode(mode: number, meta: Pick<EntryMeta, 'uid' | 'gid' | 'mtimeSec' | 'mtimeNsec' | 'xattrs'>): Node {
  const node: Node = { mode, uid: meta.uid, gid: meta.gid, mtimeSec: meta.mtimeSec, mtimeNsec: meta.mtimeNsec, xattrs: new Map(), size: 0, blkaddr: 0, rdev: 0 };
  for (const [name, value] of Object.entries(meta.xattrs ?? {})) node.xattrs.set(name, value);
  return node;
}

function dirNode(meta: EntryMeta): Node {
  const node = newNode(S_IFDIR | (meta.mode & 0o7777), meta);
  node.children = new Map();
  return node;
}

function fileNode(meta: EntryMeta): Node {
  return newNode(S_IFREG | (meta.mode & 0o7777), meta);
}

/** Owner, mode bits, mtime and xattrs of `meta` onto a node (xattrs are added, as setxattr adds them). */
function setMeta(node: Node, meta: EntryMeta): void {
  node.mode = (node.mode & ~0o7777) | (meta.mode & 0o7777);
  node.uid = meta.uid;
  node.gid = meta.gid;
  node.mtimeSec = meta.mtimeSec;
  node.mtimeNsec = meta.mtimeNsec;
  for (const [name, value] of Object.entries(meta.xattrs ?? {})) node.xattrs.set(name, value);
}
