/**
 * Encodes tar headers (ustar, with a PAX extended header where ustar cannot say it: long or
 * non-ASCII names, xattrs as raw bytes, nanosecond times, big numbers). The counterpart of
 * tar-reader.ts; used to write flattened root filesystems and layer diffs.
 */

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarEntryHeader {
  /** A byte string (src/sys/byte-path.ts), as is linkname: written byte for byte. */
  name: string;
  type: TarEntryType;
  /** Permission bits incl. setuid/setgid/sticky; 0 is written as 0. */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of content that follow (files only). */
  size?: number;
  mtimeSec: number;
  mtimeNsec?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
}

const BLOCK = 512;
const TYPEFLAG: Record<TarEntryType, string> = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' };
const NAME_BYTES = 100;
/** Largest value of an 8-byte (7 digits) and a 12-byte (11 digits) octal field. */
const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

/** The two zero blocks that end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

/** Zero bytes that pad `size` bytes of content to a whole block. */
export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The header block(s) of one entry: a PAX header (and its records) first when needed. */
export function encodeHeader(h: TarEntryHeader): Buffer {
  const name = h.type === 'dir' && !h.name.endsWith('/') ? `${h.name}/` : h.name;
  const size = h.type === 'file' ? (h.size ?? 0) : 0;
  const records: [string, Buffer][] = [];
  if (!fitsUstar(name)) records.push(['path', Buffer.from(name, 'latin1')]);
  if (h.linkname !== undefined && !fitsUstar(h.linkname)) records.push(['linkpath', Buffer.from(h.linkname, 'latin1')]);
  if (h.uid > MAX_OCTAL_7) records.push(['uid', Buffer.from(String(h.uid))]);
  if (h.gid > MAX_OCTAL_7) records.push(['gid', Buffer.from(String(h.gid))]);
  if (size > MAX_OCTAL_11) records.push(['size', Buffer.from(String(size))]);
  if (h.mtimeNsec) records.push(['mtime', Buffer.from(`${h.mtimeSec}.${String(h.mtimeNsec).padStart(9, '0').replace(/0+$/, '')}`)]);
  for (const [key, value] of Object.entries(h.xattrs ?? {})) records.push([`SCHILY.xattr.${key}`, value]);

  const main = ustarHeader({
    name: records.some(([k]) => k === 'path') ? asciiStandIn(name) : name,
    typeflag: TYPEFLAG[h.type],
    mode: h.mode & 0o7777,
    uid: Math.min(h.uid, MAX_OCTAL_7),
    gid: Math.min(h.gid, MAX_OCTAL_7),
    size: Math.min(size, MAX_OCTAL_11),
    mtime: Math.max(0, Math.min(h.mtimeSec, MAX_OCTAL_11)),
    linkname: h.linkname === undefined ? '' : fitsUstar(h.linkname) ? h.linkname : asciiStandIn(h.linkname),
    devmajor: h.devmajor ?? 0,
    devminor: h.devminor ?? 0,
  });
  if (records.length === 0) return main;
  const body = Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
  const pax = ustarHeader({ name: asciiStandIn(`PaxHeaders/${name}`), typeflag: 'x', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: Math.max(0, Math.min(h.mtimeSec, MAX_OCTAL_11)), linkname: '', devmajor: 0, devminor: 0 });
  return Buffer.concat([pax, body, padding(body.length), main]);
}

/** `<length> <key>=<value>\n`, the length counting the whole record including its own digits. */
export function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.byteLength(` ${key}=`) + value.length + 1;
  let length = rest + String(rest).length;
  if (String(length).length !== String(rest).length) length = rest + String(length).length;
  return Buffer.concat([Buffer.from(`${length} ${key}=`), value, Buffer.from('\n')]);
}

function fitsUstar(s: string): boolean {
  return s.length <= NAME_BYTES && /^[\x20-\x7e]*$/.test(s);
}

/** What goes into the 100-byte ustar field when a PAX record carries the real name. */
function asciiStandIn(s: string): string {
  let out = s.replace(/[^\x20-\x7e]/g, '_');
  if (out.length > NAME_BYTES - 1) out = out.slice(0, NAME_BYTES - 1);
  return out;
}

interface UstarFields {
  name: string;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
}

function ustarHeader(f: UstarFields): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(f.name, 0, NAME_BYTES, 'latin1');
  octal(b, 100, 8, f.mode);
  octal(b, 108, 8, f.uid);
  octal(b, 116, 8, f.gid);
  octal(b, 124, 12, f.size);
  octal(b, 136, 12, f.mtime);
  b.fill(0x20, 148, 156); // the checksum field counts as spaces while summing
  b.write(f.typeflag, 156, 1, 'latin1');
  b.write(f.linkname, 157, NAME_BYTES, 'latin1');
  b.write('ustar\x0000', 257, 8, 'latin1');
  octal(b, 329, 8, f.devmajor);
  octal(b, 337, 8, f.devminor);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return b;
}

function octal(b: Buffer, offset: number, length: number, value: number): void {
  b.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'latin1');
}
