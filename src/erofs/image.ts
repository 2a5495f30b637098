import { randomBytes } from 'node:crypto';
import { ftruncate, write } from 'node:fs';
import { promisify } from 'node:util';
import { ErofsError } from '../errors.js';
import type { DataArea } from './data-area.js';
import {
  BLOCK_SIZE,
  COMPACT_INODE_SIZE,
  DataLayout,
  dirBlocks,
  encodeDirBlock,
  encodeXattrName,
  EXTENDED_INODE_SIZE,
  fileType,
  S_IFCHR,
  S_IFBLK,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  SLOT_SIZE,
  superBlock,
  writeInode,
  writeXattrIbody,
  xattrIbodySize,
  xattrIcount,
  type DirentIn,
  type EncodedXattr,
} from './format.js';
import type { Node } from './tree.js';

const writeAsync = promisify(write);
const ftruncateAsync = promisify(ftruncate);
/** Metadata is written in pieces of about this size. */
const META_FLUSH = 4 << 20;

/** An inode's place in the image, worked out before anything of the metadata is written. */
interface Placed {
  node: Node;
  nid: number;
  ino: number;
  nlink: number;
  extended: boolean;
  xattrs: EncodedXattr[];
  xattrSize: number;
  layout: DataLayout;
  /** Bytes stored right after the inode and its xattrs (FLAT_INLINE). */
  inline?: Buffer;
  /** Directories: names in order (byte strings) and their nodes, and the split into blocks. */
  names?: string[];
  entries?: Node[];
  blocks?: number[][];
}

export interface ImageStats {
  inodes: number;
  blocks: number;
  metaBlkaddr: number;
}

/**
 * Lays out and writes everything after the file data: directory blocks (and tails that could not
 * be inlined) at the end of the data area, then the metadata area (inodes, inline xattrs, inline
 * tails; nids are 32-byte slots from its start), then the superblock in block 0, last. An inode
 * and what is inlined after it never cross a block boundary. Compact inodes where nothing needs
 * more (owner and nlink ≤ 65535, size < 4 GiB, the mtime equal to the superblock's build time,
 * which is the tree's most common mtime), extended ones otherwise.
 */
export async function writeImage(fd: number, root: Node, data: DataArea, subject: string): Promise<ImageStats> {
  const order = collect(root);
  const build = commonMtime(order.map((p) => p.node));
  for (const p of order) plan(p, build, subject);

  // Data blocks of what cannot be inlined, sizes known now (directory contents need nids: written below).
  const dirWrites: Array<{ placed: Placed; blocks: number[][] }> = [];
  for (const p of order) {
    const n = p.node;
    if (p.blocks) {
      const full = p.inline ? p.blocks.length - 1 : p.blocks.length;
      if (full > 0) {
        n.blkaddr = data.begin();
        dirWrites.push({ placed: p, blocks: p.blocks.slice(0, full) });
        data.zeros(full * BLOCK_SIZE); // reserved: filled once nids are known
      }
    } else if (n.tail && !p.inline) {
      // A file's tail or a symlink's target that does not fit beside its inode gets blocks of its own.
      // A file whose full blocks are in the data area already cannot: addFile holds its tail only when it fits.
      if ((n.mode & S_IFMT) === S_IFREG && n.size >= BLOCK_SIZE) throw new ErofsError(`${subject}: a file's tail was held for inlining but does not fit beside its inode`);
      n.blkaddr = data.begin();
      data.append(n.tail);
    }
  }
  const metaBlkaddr = await data.flush();

  // nids: inodes packed in 32-byte slots; what goes inline stays in the inode's block.
  // Slot 0 stays unused: nid 0 would be inode number 0, which readdir callers skip as a deleted entry.
  let pos = SLOT_SIZE;
  for (const p of order) {
    const size = inodeSize(p) + p.xattrSize + (p.inline?.length ?? 0);
    pos = Math.ceil(pos / SLOT_SIZE) * SLOT_SIZE;
    const within = pos % BLOCK_SIZE;
    if (within + Math.min(size, inodeSize(p)) > BLOCK_SIZE || (size <= BLOCK_SIZE && within + size > BLOCK_SIZE)) pos += BLOCK_SIZE - within;
    p.nid = pos / SLOT_SIZE;
    pos += size;
  }
  const metaBytes = pos;
  const byNode = new Map(order.map((p) => [p.node, p]));

  // Directory blocks, now that every nid is known.
  const parentOf = new Map<Node, Node>([[root, root]]);
  for (const p of order) for (const child of p.entries ?? []) if (child.children && !parentOf.has(child)) parentOf.set(child, p.node);
  const direntsOf = (p: Placed, indexes: number[]): DirentIn[] =>
    indexes.map((i) => {
      const name = p.names![i]!;
      const target = name === '.' ? p.node : name === '..' ? parentOf.get(p.node)! : p.entries![i]!;
      return { name, nid: byNode.get(target)!.nid, type: fileType(target.mode) };
    });
  for (const { placed, blocks } of dirWrites) {
    const buffers = blocks.map((b) => pad(encodeDirBlock(direntsOf(placed, b))));
    await writeFully(fd, Buffer.concat(buffers), placed.node.blkaddr * BLOCK_SIZE);
  }
  for (const p of order) if (p.blocks && p.inline) p.inline = encodeDirBlock(direntsOf(p, p.blocks[p.blocks.length - 1]!));

  // The metadata area, in pieces.
  const metaStart = metaBlkaddr * BLOCK_SIZE;
  let piece = Buffer.alloc(0);
  let pieceAt = 0;
  for (const p of order) {
    const at = p.nid * SLOT_SIZE;
    const size = inodeSize(p) + p.xattrSize + (p.inline?.length ?? 0);
    if (at + size > pieceAt + piece.length) {
      // A new piece from the block holding this inode on; what of that block the old piece holds moves along.
      const start = at - (at % BLOCK_SIZE);
      const next = Buffer.alloc(Math.max(META_FLUSH, Math.ceil((at - start + size) / BLOCK_SIZE) * BLOCK_SIZE));
      if (start < pieceAt + piece.length) piece.copy(next, 0, start - pieceAt);
      if (start > pieceAt) await writeFully(fd, piece.subarray(0, Math.min(piece.length, start - pieceAt)), metaStart + pieceAt);
      piece = next;
      pieceAt = start;
    }
    writeOne(piece, at - pieceAt, p, build);
  }
  const used = Math.min(piece.length, Math.ceil((metaBytes - pieceAt) / BLOCK_SIZE) * BLOCK_SIZE);
  if (used > 0) await writeFully(fd, piece.subarray(0, used), metaStart + pieceAt);
  const blocks = metaBlkaddr + Math.ceil(metaBytes / BLOCK_SIZE);
  await ftruncateAsync(fd, blocks * BLOCK_SIZE);
  const rootNid = byNode.get(root)!.nid;
  await writeFully(fd, superBlock({ rootNid, inos: order.length, buildTimeSec: build.sec, buildTimeNsec: build.nsec, blocks, metaBlkaddr, uuid: randomBytes(16) }), 0);
  return { inodes: order.length, blocks, metaBlkaddr };
}

/** Every inode once, root first, then breadth first; nlink counted over all names. */
function collect(root: Node): Placed[] {
  const placed = new Map<Node, Placed>();
  const order: Placed[] = [];
  const add = (node: Node) => {
    let p = placed.get(node);
    if (p === undefined) {
      p = { node, nid: 0, ino: order.length + 1, nlink: 0, extended: false, xattrs: [], xattrSize: 0, layout: DataLayout.FlatPlain };
      placed.set(node, p);
      order.push(p);
    }
    p.nlink++;
    return p;
  };
  add(root);
  for (let i = 0; i < order.length; i++) {
    const p = order[i]!;
    const children = p.node.children;
    if (!children) continue;
    // Dirents sorted by name bytes (latin1 strings compare as bytes), `.` and `..` among them: the kernel binary-searches them.
    const names = [...children.keys(), '.', '..'].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    p.names = names;
    p.entries = names.map((name) => (name === '.' || name === '..' ? p.node : children.get(name)!));
    p.nlink = 2;
    for (const [, child] of children) {
      add(child);
      // A directory's own nlink (2 + its subdirectories) is set when it is visited.
      if (child.children) p.nlink++;
    }
  }
  return order;
}

/** Layout, inline part and inode form of one inode. */
function plan(p: Placed, build: { sec: number; nsec: number }, subject: string): void {
  const n = p.node;
  p.xattrs = [...n.xattrs]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => encodeXattrName(name, value, subject));
  p.xattrSize = xattrIbodySize(p.xattrs);
  if (n.children) {
    const { blocks, size } = dirBlocks(p.names!);
    n.size = size;
    p.blocks = blocks;
  }
  p.extended = n.uid > 0xffff || n.gid > 0xffff || p.nlink > 0xffff || n.size > 0xffffffff || n.mtimeSec !== build.sec || n.mtimeNsec !== build.nsec;
  const tail = n.size % BLOCK_SIZE;
  const type = n.mode & S_IFMT;
  if (tail === 0 || (type !== S_IFREG && type !== S_IFDIR && type !== S_IFLNK)) return;
  if (type !== S_IFDIR && !n.tail) return; // streamed to the data area whole
  if (inodeSize(p) + p.xattrSize + tail > BLOCK_SIZE) return;
  p.layout = DataLayout.FlatInline;
  p.inline = n.tail ?? Buffer.alloc(tail); // a directory's last block is encoded once nids are known
}

function inodeSize(p: Placed): number {
  return p.extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE;
}

function writeOne(buf: Buffer, off: number, p: Placed, build: { sec: number; nsec: number }): void {
  const n = p.node;
  const type = n.mode & S_IFMT;
  const device = type === S_IFCHR || type === S_IFBLK;
  const hasData = type === S_IFREG || type === S_IFDIR || type === S_IFLNK;
  writeInode(buf, off, {
    extended: p.extended,
    layout: p.layout,
    xattrIcount: xattrIcount(p.xattrSize),
    mode: n.mode,
    nlink: p.nlink,
    size: hasData ? n.size : 0,
    u: device ? n.rdev : hasData ? n.blkaddr : 0,
    ino: p.ino,
    uid: n.uid,
    gid: n.gid,
    mtimeSec: p.extended ? n.mtimeSec : build.sec,
    mtimeNsec: p.extended ? n.mtimeNsec : build.nsec,
  });
  const x = off + inodeSize(p);
  writeXattrIbody(buf, x, p.xattrs);
  p.inline?.copy(buf, x + p.xattrSize);
}

/** The mtime most inodes share: those need only a compact inode. */
function commonMtime(nodes: readonly Node[]): { sec: number; nsec: number } {
  const counts = new Map<string, number>();
  let best = nodes[0]!;
  let bestCount = 0;
  for (const n of nodes) {
    const key = `${n.mtimeSec}.${n.mtimeNsec}`;
    const c = (counts.get(key) ?? 0) + 1;
    counts.set(key, c);
    if (c > bestCount) {
      bestCount = c;
      best = n;
    }
  }
  return { sec: best.mtimeSec, nsec: best.mtimeNsec };
}

function pad(block: Buffer): Buffer {
  if (block.length === BLOCK_SIZE) return block;
  const out = Buffer.alloc(BLOCK_SIZE);
  block.copy(out);
  return out;
}

async function writeFully(fd: number, buf: Buffer, position: number): Promise<void> {
  for (let off = 0; off < buf.length; ) off += (await writeAsync(fd, buf, off, buf.length - off, position + off)).bytesWritten;
}
