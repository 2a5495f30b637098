/**
 * GNU sparse files: the archive stores only the data regions of a file, back to back, with a map
 * of where they go. The map comes from the old GNU 'S' header and its extension blocks, from PAX
 * records (formats 0.0 and 0.1), or from the first blocks of the entry's data (format 1.0). Every
 * map is checked against the file's real size and the stored data before the entry goes out.
 */
import { readDecimal, readNumber, TarFormatError } from './fields.js';

/** offset, length, offset, length…: the data regions of the real file, ascending. */
export type SparseMap = number[];

/** More regions than this are refused (a 1 MiB map holds fewer). */
const MAX_REGIONS = 1 << 18;

/** Where the old GNU format keeps its map: 24-byte entries (offset[12], length[12]), then an "extended" flag byte. */
export const OLD_GNU_HEADER = { entries: 386, count: 4, extended: 482, realSize: 483 } as const;
export const OLD_GNU_EXTENSION = { entries: 0, count: 21, extended: 504 } as const;

/** Appends the regions of one old GNU header or extension block; an entry whose offset starts with NUL ends the list. */
export function readOldGnuRegions(block: Buffer, layout: { entries: number; count: number }, map: SparseMap, at: number): void {
  for (let i = 0; i < layout.count; i++) {
    const p = layout.entries + i * 24;
    if (block[p] === 0) break;
    map.push(readNumber(block, p, 12, 'sparse offset', at), readNumber(block, p + 12, 12, 'sparse length', at));
  }
  if (map.length > 2 * MAX_REGIONS) throw new TarFormatError(`tar header at byte ${at}: sparse map of more than ${MAX_REGIONS} regions`);
}

type PaxRecords = Readonly<Record<string, Buffer>>;

/**
 * Which PAX sparse format the records describe: '0.x' (map in GNU.sparse.map, to which the
 * repeated 0.0 offset/numbytes records were joined), '1.0' (map in the data), or null.
 */
export function paxSparseFormat(pax: PaxRecords, name: string): '0.x' | '1.0' | null {
  const major = pax['GNU.sparse.major']?.toString('latin1');
  const minor = pax['GNU.sparse.minor']?.toString('latin1');
  if (major === undefined && minor === undefined) return pax['GNU.sparse.map'] !== undefined ? '0.x' : null;
  if (major === '1' && minor === '0') return '1.0';
  if (major === '0' && (minor === '0' || minor === '1')) return '0.x';
  throw new TarFormatError(`entry ${JSON.stringify(name)}: unsupported GNU sparse format ${major ?? '?'}.${minor ?? '?'}`);
}

/** The real size of a PAX sparse file, or undefined when the records do not say. */
export function paxSparseSize(pax: PaxRecords, name: string): number | undefined {
  const value = pax['GNU.sparse.size'] ?? pax['GNU.sparse.realsize'];
  if (value === undefined) return undefined;
  const n = readDecimal(value);
  if (Number.isNaN(n)) throw new TarFormatError(`entry ${JSON.stringify(name)}: invalid GNU sparse size ${JSON.stringify(value.toString('latin1'))}`);
  return n;
}

/** Formats 0.0 and 0.1: `GNU.sparse.map=offset,length,…`, as many pairs as GNU.sparse.numblocks says. */
export function paxSparseMap(pax: PaxRecords, name: string): SparseMap {
  const text = pax['GNU.sparse.map'] ?? Buffer.alloc(0);
  const map: SparseMap = [];
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf(44, start);
    if (end < 0) end = text.length;
    const n = readDecimal(text, start, end);
    if (Number.isNaN(n)) throw new TarFormatError(`entry ${JSON.stringify(name)}: invalid GNU.sparse.map`);
    map.push(n);
    if (map.length > 2 * MAX_REGIONS) throw new TarFormatError(`entry ${JSON.stringify(name)}: sparse map of more than ${MAX_REGIONS} regions`);
    start = end + 1;
    if (end === text.length - 1) throw new TarFormatError(`entry ${JSON.stringify(name)}: invalid GNU.sparse.map`);
  }
  const blocks = pax['GNU.sparse.numblocks'];
  if (map.length % 2 !== 0 || (blocks !== undefined && readDecimal(blocks) * 2 !== map.length)) {
    throw new TarFormatError(`entry ${JSON.stringify(name)}: GNU.sparse.map holds ${map.length} numbers, not an offset and a length for each of GNU.sparse.numblocks`);
  }
  return map;
}

/**
 * Format 1.0: decimal numbers one per line (the count of regions, then offset and length of
 * each), padded to whole blocks, at the start of the entry's data. Fed block by block.
 */
export class SparseMapBlocks {
  /** Bytes of blocks taken so far. */
  bytes = 0;
  private readonly parts: Buffer[] = [];
  private newlines = 0;
  /** Lines the map has, once its first line (the count) is read. */
  private lines = -1;

  constructor(private readonly name: string, private readonly maxBytes: number) {}

  /** Takes one block; returns the map when it is complete, else null. */
  add(block: Buffer): SparseMap | null {
    this.parts.push(block);
    this.bytes += block.length;
    for (let i = 0; i < block.length; i++) if (block[i] === 10) this.newlines++;
    if (this.lines < 0 && this.newlines > 0) {
      const text = Buffer.concat(this.parts);
      const count = readDecimal(text, 0, text.indexOf(10));
      if (Number.isNaN(count) || count > MAX_REGIONS) throw this.invalid(`a count of ${JSON.stringify(text.toString('latin1', 0, Math.min(text.indexOf(10), 40)))} regions`);
      this.lines = 1 + 2 * count;
    }
    if (this.lines >= 0 && this.newlines >= this.lines) return this.parse();
    if (this.bytes >= this.maxBytes) throw this.invalid(`more than ${this.maxBytes} bytes`);
    return null;
  }

  private parse(): SparseMap {
    const text = Buffer.concat(this.parts);
    const map: SparseMap = [];
    let start = text.indexOf(10) + 1;
    for (let line = 1; line < this.lines; line++) {
      const end = text.indexOf(10, start);
      const n = readDecimal(text, start, end);
      if (Number.isNaN(n)) throw this.invalid(`line ${line + 1} ${JSON.stringify(text.toString('latin1', start, Math.min(end, start + 40)))}`);
      map.push(n);
      start = end + 1;
    }
    return map;
  }

  private invalid(what: string): TarFormatError {
    return new TarFormatError(`entry ${JSON.stringify(this.name)}: invalid GNU sparse map (format 1.0): ${what}`);
  }
}

/** Regions ascending and inside the real size, their lengths adding up to the stored data. */
export function checkSparseMap(map: SparseMap, realSize: number, stored: number, name: string): void {
  let end = 0;
  let data = 0;
  for (let i = 0; i < map.length; i += 2) {
    const offset = map[i]!;
    const length = map[i + 1]!;
    if (offset < end) throw new TarFormatError(`entry ${JSON.stringify(name)}: sparse region at ${offset} overlaps the one before or is out of order`);
    if (offset > realSize || length > realSize - offset) throw new TarFormatError(`entry ${JSON.stringify(name)}: sparse region ${offset}+${length} ends past the real size ${realSize}`);
    end = offset + length;
    data += length;
  }
  if (data !== stored) throw new TarFormatError(`entry ${JSON.stringify(name)}: sparse map holds ${data} bytes of data, the archive stores ${stored}`);
}
