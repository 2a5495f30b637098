/**
 * File names are bytes, not text: a layer may hold names that are not UTF-8, and they must come
 * out as they went in (containerd and GNU tar keep them). Inside stratum a name read from a tar
 * or a directory is a *byte string*: one char per byte (latin1), so `/`, `.` and `.wh.` tests work
 * as on text and no byte is lost. These helpers convert at the edges: to Buffers for fs calls and
 * the addon, and to readable text for messages.
 */
import { readdir, readlink } from 'node:fs/promises';
import { readdirSync } from 'node:fs';

/** The bytes of a byte string. */
export function bytesOf(name: string): Buffer {
  return Buffer.from(name, 'latin1');
}

/** A byte string holding these bytes. */
export function byteString(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** A real directory path (text) joined with a byte-string relative path, as bytes for fs calls. */
export function underDir(dir: string, rel: string): Buffer {
  if (rel === '') return Buffer.from(dir);
  return Buffer.concat([Buffer.from(dir.endsWith('/') ? dir : `${dir}/`), bytesOf(rel)]);
}

/** For messages: the bytes read as UTF-8, every byte that is not part of valid UTF-8 as `\xNN`. */
export function showName(name: string): string {
  // Pure ASCII (the common case) is its own display form.
  if (!/[^\x00-\x7f]/.test(name)) return name;
  const bytes = bytesOf(name);
  const text = bytes.toString('utf8');
  if (Buffer.from(text).equals(bytes)) return text;
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const n = utf8SequenceLength(bytes, i);
    if (n === 0) out += `\\x${bytes[i]!.toString(16).padStart(2, '0')}`;
    else out += bytes.toString('utf8', i, i + n);
    i += n === 0 ? 1 : n;
  }
  return out;
}

/** JSON-quoted showName, the form error messages use. */
export function quoteName(name: string): string {
  return JSON.stringify(showName(name));
}

/** The entries of a directory as byte strings. */
export async function readdirNames(dir: Buffer): Promise<string[]> {
  return (await readdir(dir, { encoding: 'buffer' })).map(byteString);
}

export function readdirNamesSync(dir: Buffer): string[] {
  return readdirSync(dir, { encoding: 'buffer' }).map(byteString);
}

/** A symlink's target as a byte string. */
export async function readlinkName(path: Buffer): Promise<string> {
  return byteString(await readlink(path, { encoding: 'buffer' }));
}

/** Bytes of the valid UTF-8 sequence starting at i, or 0. */
function utf8SequenceLength(b: Buffer, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (n === 0 || i + n > b.length) return 0;
  for (let k = 1; k < n; k++) if ((b[i + k]! & 0xc0) !== 0x80) return 0;
  const text = b.toString('utf8', i, i + n);
  return text.includes('\ufffd') ? 0 : n;
}
