/**
 * Seeds for mutation fuzzing of the tar reader and the unpack path (fuzz.test.ts): small valid
 * archives, built byte for byte the same on every run so a failing seed replays, that reach
 * every part of the reader (ustar, PAX, GNU long names, every entry type, whiteouts, a streamed
 * file, every GNU sparse format). Each seed records where its header blocks start, for
 * mutations aimed at header fields.
 */
import { END_OF_ARCHIVE, entry, gnuLong, header, padded, pax, tarOf } from '../fixtures/hostile/tar-writer.js';

export interface Seed {
  name: string;
  bytes: Buffer;
  /** Offsets of the header blocks (entries and extension headers). */
  headers: number[];
}

/** Concatenates parts, noting where each header-bearing part starts. */
function seed(name: string, ...parts: Buffer[]): Seed {
  const headers: number[] = [];
  let at = 0;
  for (const p of parts) {
    headers.push(at);
    at += p.length;
  }
  return { name, bytes: Buffer.concat([...parts, END_OF_ARCHIVE]), headers };
}

/** Recomputes a header block's checksum after its fields were changed. */
export function fixChecksum(block: Buffer, at = 0): void {
  block.fill(32, at + 148, at + 156);
  let sum = 0;
  for (let i = at; i < at + 512; i++) sum += block[i]!;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, at + 148, 'latin1');
}

/** PAX records in the order given (repeated keys allowed, as sparse format 0.0 needs). */
function paxRecords(records: [string, string][]): Buffer {
  const body = Buffer.concat(
    records.map(([k, v]) => {
      const rest = Buffer.byteLength(k) + Buffer.byteLength(v) + 3;
      let len = rest + String(rest).length;
      if (String(len).length !== String(rest).length) len = rest + String(len).length;
      return Buffer.from(`${len} ${k}=${v}\n`);
    }),
  );
  return entry({ name: 'PaxHeaders/x', type: 'x' }, body);
}

const octal = (n: number, width: number) => `${n.toString(8).padStart(width - 1, '0')}\0`;

/** An old GNU sparse ('S') entry: up to 4 regions in the header, the rest in extension blocks. */
function oldGnuSparse(name: string, realSize: number, regions: [number, number][]): Buffer {
  const data = Buffer.concat(regions.map(([, len], i) => Buffer.alloc(len, 0x41 + i)));
  const head = header({ name, type: 'S', size: data.length });
  head.write('ustar  \0', 257, 'latin1');
  const put = (block: Buffer, at: number, [off, len]: [number, number]) => {
    block.write(octal(off, 12), at, 'latin1');
    block.write(octal(len, 12), at + 12, 'latin1');
  };
  regions.slice(0, 4).forEach((r, i) => put(head, 386 + 24 * i, r));
  head.write(octal(realSize, 12), 483, 'latin1');
  const extensions: Buffer[] = [];
  for (let i = 4; i < regions.length; i += 21) {
    const ext = Buffer.alloc(512);
    regions.slice(i, i + 21).forEach((r, j) => put(ext, 24 * j, r));
    extensions.push(ext);
  }
  if (extensions.length > 0) head[482] = 1;
  extensions.forEach((ext, i) => (ext[504] = i < extensions.length - 1 ? 1 : 0));
  fixChecksum(head);
  return Buffer.concat([head, ...extensions, padded(data)]);
}

const pattern = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff));

export const SEEDS: Seed[] = [
  seed(
    'every-type',
    entry({ name: 'd/', type: '5', mode: 0o755 }),
    entry({ name: 'd/f', mode: 0o640, uid: 7, gid: 8 }, 'hello world'),
    entry({ name: 'd/l', type: '2', linkname: 'f', mode: 0o777 }),
    entry({ name: 'd/h', type: '1', linkname: 'd/f' }),
    entry({ name: 'd/p', type: '6', mode: 0o600 }),
    entry({ name: 'd/null', type: '3', devmajor: 1, devminor: 3, mode: 0o666 }),
    entry({ name: 'e/.wh.gone' }),
    entry({ name: 'e/.wh..wh..opq' }),
    entry({ name: 'e/kept' }, 'kept'),
  ),
  seed(
    'pax-and-gnu-names',
    pax({ path: `long/${'n'.repeat(120)}`, 'SCHILY.xattr.user.note': 'v', mtime: '1612325106.5', uid: '3000000' }),
    entry({ name: 'cut-name' }, 'pax data'),
    gnuLong(`gnu/${'g'.repeat(110)}`),
    entry({ name: 'gnu-cut' }, 'gnu data'),
    gnuLong(`gnu/${'k'.repeat(105)}`, 'K'),
    entry({ name: 'gnu/link', type: '2', linkname: 'x' }),
    pax({ comment: 'global' }, 'g'),
    entry({ name: `${'d'.repeat(99)}/`, type: '0' }),
  ),
  seed(
    'replacements',
    entry({ name: 'a' }, 'file first'),
    entry({ name: 'a/', type: '5' }),
    entry({ name: 'a/b' }, 'in the dir'),
    entry({ name: 'a', type: '2', linkname: 'b' }),
    entry({ name: 'c/', type: '5' }),
    entry({ name: 'c/.wh.x' }),
    entry({ name: 'c/x' }, 'after its whiteout'),
    entry({ name: 'c/hl', type: '1', linkname: 'c/x' }),
    entry({ name: 'c/x' }, 'replaced'),
    entry({ name: 'c/.wh..wh..opq' }),
  ),
  seed('streamed-file', entry({ name: 'big', mode: 0o644 }, pattern((1 << 20) + 100)), entry({ name: 'after' }, 'after')),
  seed('old-gnu-sparse', oldGnuSparse('sp-old', 20_000, [[0, 100], [4096, 50], [8192, 10], [12_000, 5], [16_000, 3]]), entry({ name: 'after' }, 'x')),
  seed(
    'pax-sparse-0.0',
    paxRecords([['GNU.sparse.size', '9000'], ['GNU.sparse.numblocks', '2'], ['GNU.sparse.offset', '10'], ['GNU.sparse.numbytes', '5'], ['GNU.sparse.offset', '8000'], ['GNU.sparse.numbytes', '7']]),
    entry({ name: 'sp00' }, 'aaaaabbbbbbb'),
  ),
  seed(
    'pax-sparse-0.1',
    paxRecords([['GNU.sparse.size', '2000000'], ['GNU.sparse.numblocks', '2'], ['GNU.sparse.name', 'sp01'], ['GNU.sparse.map', '0,4,1999990,6']]),
    entry({ name: 'GNUSparseFile.1/sp01' }, 'headtail!!'),
  ),
  seed(
    'pax-sparse-1.0',
    paxRecords([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.name', 'sp10'], ['GNU.sparse.realsize', '3000000']]),
    entry({ name: 'GNUSparseFile.1/sp10' }, Buffer.concat([padded(Buffer.from('2\n0\n5\n2999990\n10\n')), Buffer.from('startend-bytes!')])),
  ),
];

/** A header with its mtime field in GNU base-256 (negative: two's complement), checksum fixed. */
function withMtime(block: Buffer, mtime: bigint): Buffer {
  const b = Buffer.from(block);
  let v = BigInt.asUintN(88, mtime);
  for (let i = 147; i > 136; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  b[136] = mtime < 0n ? 0xff : 0x80;
  fixChecksum(b);
  return b;
}

export interface Regression {
  what: string;
  bytes: Buffer;
  /** The layer must apply (in both modes), not merely fail cleanly. */
  applies?: true;
}

/**
 * Inputs that once went wrong, replayed on every run. A counterexample the fuzzer prints goes
 * here as `{ what, bytes: Buffer.from('<base64>', 'base64') }`.
 */
export const REGRESSIONS: Regression[] = [
  {
    what: 'PAX path over a ustar name cut at a slash: the file was taken for a directory, its data for a header',
    bytes: tarOf(pax({ path: `${'d'.repeat(99)}/file` }), entry({ name: `${'d'.repeat(99)}/` }, 'hello'), entry({ name: 'after' }, 'x')),
    applies: true,
  },
  {
    what: 'GNU long name over a ustar name cut at a slash',
    bytes: tarOf(gnuLong(`${'g'.repeat(99)}/file`), entry({ name: `${'g'.repeat(99)}/` }, 'hello'), entry({ name: 'after' }, 'x')),
    applies: true,
  },
  {
    what: "a regular file named with a trailing slash: a directory whose declared data was read as the next header",
    bytes: tarOf(entry({ name: 'a/b/' }, 'data of a directory'), entry({ name: 'after' }, 'x')),
    applies: true,
  },
  {
    what: 'a negative base-256 mtime (GNU tar, pre-1970) was refused',
    bytes: tarOf(withMtime(header({ name: 'old', size: 0 }), -2208988800n)),
    applies: true,
  },
];
