/**
 * The EROFS on-disk format, as far as stratum writes it (the kernel's fs/erofs/erofs_fs.h and
 * Documentation/filesystems/erofs.rst): 4 KiB blocks, uncompressed data, compact (32-byte) and
 * extended (64-byte) inodes, inline xattrs with the built-in name prefixes, directories of sorted
 * dirents. Everything little-endian.
 */
import { ErofsError } from '../errors.js';

export const BLOCK_BITS = 12;
export const BLOCK_SIZE = 1 << BLOCK_BITS;
export const SUPER_OFFSET = 1024;
export const EROFS_MAGIC = 0xe0f5e1e2;
export const FEATURE_COMPAT_SB_CHKSUM = 0x1;
/** nids count 32-byte slots from the start of the metadata area. */
export const SLOT_SIZE = 32;
export const COMPACT_INODE_SIZE = 32;
export const EXTENDED_INODE_SIZE = 64;
export const DIRENT_SIZE = 12;
export const XATTR_IBODY_HEADER_SIZE = 12;
export const XATTR_ENTRY_HEADER_SIZE = 4;
export const MAX_NAME_LEN = 255;

export const enum DataLayout {
  FlatPlain = 0,
  FlatInline = 2,
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

/** Dirent file types (the kernel's FT_*). */
export function fileType(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 1;
    case S_IFDIR:
      return 2;
    case S_IFCHR:
      return 3;
    case S_IFBLK:
      return 4;
    case S_IFIFO:
      return 5;
    case S_IFLNK:
      return 7;
    default:
      return 0;
  }
}

/** The kernel's new_encode_dev: what erofs keeps in i_u for a device. */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

/** Built-in xattr name prefixes (EROFS_XATTR_INDEX_*): the longest that matches is stored as its index. */
const XATTR_PREFIXES: ReadonlyArray<[string, number]> = [
  ['system.posix_acl_access', 2],
  ['system.posix_acl_default', 3],
  ['user.', 1],
  ['trusted.', 4],
  ['security.', 6],
];

export interface EncodedXattr {
  index: number;
  /** The name after the prefix, as bytes. */
  suffix: Buffer;
  value: Buffer;
}

/** Splits an xattr name (a byte string) into a prefix index and the rest; EROFS holds no other namespace. */
export function encodeXattrName(name: string, value: Buffer, where: string): EncodedXattr {
  for (const [prefix, index] of XATTR_PREFIXES) {
    if (!name.startsWith(prefix)) continue;
    const suffix = Buffer.from(name.slice(prefix.length), 'latin1');
    if (suffix.length > 255) throw new ErofsError(`${where}: xattr ${JSON.stringify(name)} has a name longer than EROFS holds (255 bytes after its prefix)`);
    if (value.length > 0xffff) throw new ErofsError(`${where}: xattr ${JSON.stringify(name)} has a value of ${value.length} bytes, more than EROFS holds (65535)`);
    return { index, suffix, value };
  }
  throw new ErofsError(`${where}: xattr ${JSON.stringify(name)} is in no namespace EROFS holds (user., trusted., security., POSIX ACLs)`);
}

const align4 = (n: number) => (n + 3) & ~3;

/** Bytes the inline xattr body takes (0 without xattrs): the 12-byte header, then 4-aligned entries. */
export function xattrIbodySize(xattrs: readonly EncodedXattr[]): number {
  if (xattrs.length === 0) return 0;
  let size = XATTR_IBODY_HEADER_SIZE;
  for (const x of xattrs) size += align4(XATTR_ENTRY_HEADER_SIZE + x.suffix.length + x.value.length);
  return size;
}

/** Writes the inline xattr body at `buf[off]` (zeroed memory); returns its size. */
export function writeXattrIbody(buf: Buffer, off: number, xattrs: readonly EncodedXattr[]): number {
  if (xattrs.length === 0) return 0;
  // h_name_filter 0 (the filter feature is off), no shared xattrs.
  let pos = off + XATTR_IBODY_HEADER_SIZE;
  for (const x of xattrs) {
    buf[pos] = x.suffix.length;
    buf[pos + 1] = x.index;
    buf.writeUInt16LE(x.value.length, pos + 2);
    x.suffix.copy(buf, pos + 4);
    x.value.copy(buf, pos + 4 + x.suffix.length);
    pos += align4(XATTR_ENTRY_HEADER_SIZE + x.suffix.length + x.value.length);
  }
  return pos - off;
}

/** i_xattr_icount for an inline body of `size` bytes: the header counts as 1, then one per 4 bytes. */
export function xattrIcount(size: number): number {
  return size === 0 ? 0 : 1 + (size - XATTR_IBODY_HEADER_SIZE) / 4;
}

export interface InodeFields {
  extended: boolean;
  layout: DataLayout;
  xattrIcount: number;
  /** Type and permission bits. */
  mode: number;
  nlink: number;
  size: number;
  /** raw_blkaddr, or the encoded rdev of a device. */
  u: number;
  ino: number;
  uid: number;
  gid: number;
  mtimeSec: number;
  mtimeNsec: number;
}

/** Writes an inode at `buf[off]` (zeroed memory). A compact one takes its mtime from the superblock. */
export function writeInode(buf: Buffer, off: number, f: InodeFields): void {
  buf.writeUInt16LE((f.extended ? 1 : 0) | (f.layout << 1), off);
  buf.writeUInt16LE(f.xattrIcount, off + 2);
  buf.writeUInt16LE(f.mode, off + 4);
  if (!f.extended) {
    buf.writeUInt16LE(f.nlink, off + 6);
    buf.writeUInt32LE(f.size, off + 8);
    // i_reserved (i_mtime relative to the superblock's time on newer kernels): 0 = build_time.
    buf.writeUInt32LE(f.u, off + 16);
    buf.writeUInt32LE(f.ino >>> 0, off + 20);
    buf.writeUInt16LE(f.uid, off + 24);
    buf.writeUInt16LE(f.gid, off + 26);
    return;
  }
  buf.writeBigUInt64LE(BigInt(f.size), off + 8);
  buf.writeUInt32LE(f.u, off + 16);
  buf.writeUInt32LE(f.ino >>> 0, off + 20);
  buf.writeUInt32LE(f.uid, off + 24);
  buf.writeUInt32LE(f.gid, off + 28);
  buf.writeBigInt64LE(BigInt(f.mtimeSec), off + 32);
  buf.writeUInt32LE(f.mtimeNsec, off + 40);
  buf.writeUInt32LE(f.nlink, off + 44);
}

export interface SuperBlockFields {
  rootNid: number;
  inos: number;
  buildTimeSec: number;
  buildTimeNsec: number;
  blocks: number;
  metaBlkaddr: number;
  uuid: Buffer;
}

/** Block 0: zeros, the superblock at 1024, crc32c over the rest of the block (SB_CHKSUM). */
export function superBlock(f: SuperBlockFields): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE);
  const o = SUPER_OFFSET;
  block.writeUInt32LE(EROFS_MAGIC, o);
  block.writeUInt32LE(FEATURE_COMPAT_SB_CHKSUM, o + 8);
  block[o + 12] = BLOCK_BITS;
  block.writeUInt16LE(f.rootNid, o + 14);
  block.writeBigUInt64LE(BigInt(f.inos), o + 16);
  block.writeBigUInt64LE(BigInt(f.buildTimeSec), o + 24);
  block.writeUInt32LE(f.buildTimeNsec, o + 32);
  block.writeUInt32LE(f.blocks, o + 36);
  block.writeUInt32LE(f.metaBlkaddr, o + 40);
  // xattr_blkaddr (o + 44) stays 0: no shared xattrs.
  f.uuid.copy(block, o + 48, 0, 16);
  block.writeUInt32LE(crc32c(block.subarray(o)), o + 4);
  return block;
}

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** CRC-32C seeded with ~0 and not inverted at the end, as the kernel's crc32c(~0, …) that erofs checks. */
export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = CRC32C_TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return crc >>> 0;
}

export interface DirentIn {
  /** A byte string. */
  name: string;
  nid: number;
  type: number;
}

/** Names per directory block: entries packed greedily, each block holding its dirents then its names. */
export function dirBlocks(names: readonly string[]): { blocks: number[][]; size: number } {
  const blocks: number[][] = [];
  let current: number[] = [];
  let used = 0;
  for (let i = 0; i < names.length; i++) {
    const need = DIRENT_SIZE + names[i]!.length;
    if (used + need > BLOCK_SIZE) {
      blocks.push(current);
      current = [];
      used = 0;
    }
    current.push(i);
    used += need;
  }
  blocks.push(current);
  return { blocks, size: (blocks.length - 1) * BLOCK_SIZE + used };
}

/** One directory block's bytes (its used length, not padded) for entries already in name order. */
export function encodeDirBlock(entries: readonly DirentIn[]): Buffer {
  let size = entries.length * DIRENT_SIZE;
  for (const e of entries) size += e.name.length;
  const buf = Buffer.alloc(size);
  let nameoff = entries.length * DIRENT_SIZE;
  entries.forEach((e, i) => {
    const at = i * DIRENT_SIZE;
    buf.writeBigUInt64LE(BigInt(e.nid), at);
    buf.writeUInt16LE(nameoff, at + 8);
    buf[at + 10] = e.type;
    nameoff += buf.write(e.name, nameoff, 'latin1');
  });
  return buf;
}
