import { InvalidArgumentError, UnsafePathError } from '../errors.js';
import { quoteName } from './byte-path.js';
import type { EntryMeta, FsOp } from './native.js';

/**
 * Encodes a batch for the addon's applyProgram: one Buffer of fixed-layout records (little-endian;
 * strings as u32 length + bytes + NUL: paths and link targets are byte strings, one byte per char,
 * xattr names UTF-8) and the list of content Buffers it refers to by index, so
 * the main thread makes no N-API call per op and file data is never copied. Layout per op:
 *   u8 opcode, u8 node kind, u16 0, str path, then by opcode:
 *   file: u32 data · symlink, hardlink: str target · mknod: u32 major, u32 minor ·
 *   setxattr: str name, u32 data; then for mkdir, file, symlink, mknod, times:
 *   meta = u32 mode, u32 uid, u32 gid, i64 atimeSec, u32 atimeNsec, i64 mtimeSec, u32 mtimeNsec,
 *          u32 count, count × (str name, u32 data)
 * Must match native/batch.c.
 */
const OPCODES = { mkdir: 1, file: 2, symlink: 3, hardlink: 4, mknod: 5, remove: 6, removeChildren: 7, setxattr: 8, times: 9 } as const;
const NOT_A_BYTE = /[^\x00-\xff]/;
const NODE_KINDS = { char: 1, block: 2, fifo: 3 } as const;

export interface EncodedBatch {
  program: Buffer;
  datas: Buffer[];
}

class ProgramWriter {
  buf = Buffer.allocUnsafe(64 * 1024);
  off = 0;
  readonly datas: Buffer[] = [];

  private reserve(n: number): void {
    if (this.off + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.off + n) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buf.copy(grown, 0, 0, this.off);
    this.buf = grown;
  }
  u8(v: number): void {
    this.reserve(1);
    this.buf[this.off++] = v;
  }
  u32(v: number): void {
    this.reserve(4);
    this.buf.writeUInt32LE(v, this.off);
    this.off += 4;
  }
  i64(v: number): void {
    this.reserve(8);
    const hi = Math.floor(v / 0x100000000);
    this.buf.writeUInt32LE(v - hi * 0x100000000, this.off);
    this.buf.writeInt32LE(hi, this.off + 4);
    this.off += 8;
  }
  str(s: string): void {
    this.reserve(4 + s.length * 3 + 1); // UTF-8 takes at most 3 bytes per UTF-16 unit
    const n = this.buf.write(s, this.off + 4, 'utf8');
    this.buf.writeUInt32LE(n, this.off);
    this.buf[this.off + 4 + n] = 0;
    this.off += 4 + n + 1;
  }
  /** A byte string (src/sys/byte-path.ts): every char is one byte. */
  bytes(s: string): void {
    this.reserve(4 + s.length + 1);
    this.buf.writeUInt32LE(s.length, this.off);
    this.buf.write(s, this.off + 4, 'latin1');
    this.buf[this.off + 4 + s.length] = 0;
    this.off += 4 + s.length + 1;
  }
  data(b: Uint8Array): void {
    this.u32(this.datas.length);
    this.datas.push(Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  }
}

function checkUint(v: unknown, what: string, where: string, max = 0xffffffff): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new InvalidArgumentError(`${where}: ${what} must be an integer in 0..${max}, got ${String(v)}`);
  }
  return v;
}

function checkTime(v: unknown, what: string, where: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new InvalidArgumentError(`${where}: ${what} must be a whole number of seconds, got ${String(v)}`);
  return v;
}

function meta(w: ProgramWriter, m: EntryMeta, where: string): void {
  w.u32(checkUint(m.mode, 'meta.mode', where));
  w.u32(checkUint(m.uid, 'meta.uid', where));
  w.u32(checkUint(m.gid, 'meta.gid', where));
  const mtimeSec = checkTime(m.mtimeSec, 'meta.mtimeSec', where);
  const mtimeNsec = checkUint(m.mtimeNsec, 'meta.mtimeNsec', where, 999_999_999);
  // Without an atime the mtime is used, so the same layer always gives the same tree.
  w.i64(m.atimeSec === undefined ? mtimeSec : checkTime(m.atimeSec, 'meta.atimeSec', where));
  w.u32(m.atimeSec === undefined ? mtimeNsec : checkUint(m.atimeNsec ?? 0, 'meta.atimeNsec', where, 999_999_999));
  w.i64(mtimeSec);
  w.u32(mtimeNsec);
  const names = m.xattrs ? Object.keys(m.xattrs) : [];
  w.u32(names.length);
  for (const name of names) {
    w.str(name);
    w.data(m.xattrs![name]!);
  }
}

export function encodeBatch(ops: readonly FsOp[]): EncodedBatch {
  const w = new ProgramWriter();
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    const where = `batch op ${i} (${op.op} ${quoteName(op.path)})`;
    const code = OPCODES[op.op];
    if (code === undefined) throw new InvalidArgumentError(`${where}: unknown op`);
    if (typeof op.path !== 'string') throw new InvalidArgumentError(`${where}: path must be a string`);
    // C strings would silently end at a NUL: refuse it here, where the whole name can still be shown.
    for (const [what, s] of [['path', op.path], ['target', 'target' in op ? op.target : '']] as const) {
      if (NOT_A_BYTE.test(s)) throw new InvalidArgumentError(`${where}: the ${what} is not a byte string (a char above \\xff): convert names with bytesOf/byteString`);
      if (s.includes('\0')) throw new UnsafePathError(`unsafe path ${quoteName(op.path)}: the ${what} contains a NUL byte`, { path: op.path, opIndex: i });
    }
    w.u8(code);
    w.u8(op.op === 'mknod' ? NODE_KINDS[op.kind] ?? 0 : 0);
    w.u8(0);
    w.u8(0);
    w.bytes(op.path);
    switch (op.op) {
      case 'mkdir':
      case 'times':
        meta(w, op.meta, where);
        break;
      case 'file':
        w.data(op.data);
        meta(w, op.meta, where);
        break;
      case 'symlink':
        w.bytes(op.target);
        meta(w, op.meta, where);
        break;
      case 'hardlink':
        w.bytes(op.target);
        break;
      case 'mknod':
        if (NODE_KINDS[op.kind] === undefined) throw new InvalidArgumentError(`${where}: kind must be char, block or fifo`);
        w.u32(checkUint(op.major, 'major', where));
        w.u32(checkUint(op.minor, 'minor', where));
        meta(w, op.meta, where);
        break;
      case 'setxattr':
        w.str(op.name);
        w.data(op.value);
        break;
      case 'remove':
      case 'removeChildren':
        break;
    }
  }
  return { program: w.buf.subarray(0, w.off), datas: w.datas };
}
