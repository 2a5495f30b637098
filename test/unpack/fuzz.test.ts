/**
 * Fuzzing (issue 8 §3) of the tar reader alone and of the whole unpack path (applyLayer into a
 * temp root, full and overlay mode), with fast-check and a fixed seed:
 * - mutations of valid seeds: bit flips, byte changes, truncations, insertions, header fields set
 *   to odd values (sizes, checksums, type flags, modes, names, link names, sparse maps), PAX
 *   lengths and sparse maps that lie, gzip or zstd around or under the result;
 * - generated layers with few names, so entries collide, climb and pass through links.
 * Properties: only typed errors (TarFormatError from the reader; a StratumError with a known code
 * from applyLayer), no hang, nothing written outside the root, no file descriptor left open.
 * And differentially: generated trees with distinct names unpack exactly as GNU tar unpacks them.
 *
 * CI runs a bounded number of cases (about 30 s); STRATUM_FUZZ_RUNS=N multiplies them by N (and
 * STRATUM_FUZZ_SEED picks another seed) for a longer hunt. A counterexample found goes into
 * REGRESSIONS in fuzz-corpus.ts, which every run replays.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { compress as zstdCompress } from 'zstd-napi';
import { StratumError } from '../../src/errors.js';
import { applyLayer } from '../../src/unpack/apply.js';
import { TarFormatError, TarReader } from '../../src/tar/reader.js';
import { nativeOrSkip } from '../helpers/native.js';
import { assertUnpacksLikeGnuTar, missingTool } from '../helpers/tar-tools.js';
import { TempDirs } from '../helpers/tmp.js';
import { entry, gnuLong, pax, tarOf } from '../fixtures/hostile/tar-writer.js';
import { fixChecksum, REGRESSIONS, SEEDS } from './fuzz-corpus.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());
const { skip } = nativeOrSkip('devices and owners in fuzzed layers');

const SCALE = Math.max(1, Number(process.env.STRATUM_FUZZ_RUNS ?? 1));
const SEED = Number(process.env.STRATUM_FUZZ_SEED ?? 20261203);
const READER_RUNS = 4000 * SCALE;
const APPLY_RUNS = 600 * SCALE;
/** Codes applyLayer may refuse a layer with (src/errors.ts). */
const APPLY_CODES = new Set(['ERR_INVALID_LAYER', 'ERR_UNSAFE_ENTRY', 'ERR_LIMIT_EXCEEDED', 'ERR_UNSAFE_PATH', 'ERR_APPLY']);

// ---- mutations ----------------------------------------------------------------------------

const FIELDS = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  size: [124, 12],
  mtime: [136, 12],
  checksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 8],
  devmajor: [329, 8],
  prefix: [345, 155],
  sparseMap: [386, 96],
  sparseExtended: [482, 1],
  sparseRealSize: [483, 12],
} as const;
type Field = keyof typeof FIELDS;

type Mutation =
  | { kind: 'flip'; pos: number; bit: number }
  | { kind: 'byte'; pos: number; value: number }
  | { kind: 'truncate'; pos: number }
  | { kind: 'insert'; pos: number; bytes: Uint8Array }
  | { kind: 'delete'; pos: number; length: number }
  | { kind: 'field'; header: number; field: Field; value: Uint8Array }
  | { kind: 'number'; index: number; digits: string; sameLength: boolean };

const text = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
/** Values for a header field: octal text (sane, huge, empty), base-256 (positive, negative), type flags, names with `..` and slashes, noise. */
const fieldValue = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 40n) - 1n }).map((n) => text(`${n.toString(8)}\0`)),
  fc.constantFrom('77777777777\0', '', ' ', '\0', '-1', '8', 'x', '0', '1', '2', '3', '4', '5', '6', '7', 'S', 'x', 'g', 'L', 'K', 'V', 'D', '../x', 'a/../../b', '/abs', 'ustar\0', 'ustar  \0').map(text),
  fc.uint8Array({ minLength: 1, maxLength: 12 }).map((b) => {
    const out = new Uint8Array(b);
    out[0] = out[0]! | 0x80; // base-256, either sign
    return out;
  }),
  fc.uint8Array({ maxLength: 100 }),
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), pos: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('byte' as const), pos: fc.nat(), value: fc.nat(255) }),
  fc.record({ kind: fc.constant('truncate' as const), pos: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), pos: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 600 }) }),
  fc.record({ kind: fc.constant('delete' as const), pos: fc.nat(), length: fc.integer({ min: 1, max: 600 }) }),
  { arbitrary: fc.record({ kind: fc.constant('field' as const), header: fc.nat(), field: fc.constantFrom(...(Object.keys(FIELDS) as Field[])), value: fieldValue }), weight: 4 },
  {
    arbitrary: fc.record({
      kind: fc.constant('number' as const),
      index: fc.nat(),
      digits: fc.oneof(fc.nat().map(String), fc.constantFrom('0', '', '9'.repeat(20), '18446744073709551616')),
      sameLength: fc.boolean(),
    }),
    weight: 3,
  },
);

interface Case {
  seed: number;
  mutations: Mutation[];
  /** Recompute the checksums of the seed's headers afterwards, so mutations reach past the checksum. */
  fixChecksums: boolean;
  chunk: number;
  /** Compress the mutated archive, or mutate the compressed seed. */
  compression: { codec: 'none' } | { codec: 'gzip' | 'zstd'; mutateCompressed: boolean };
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  seed: fc.nat(SEEDS.length - 1),
  mutations: fc.array(mutation, { minLength: 1, maxLength: 4 }),
  fixChecksums: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 }),
  chunk: fc.oneof(fc.integer({ min: 1, max: 1024 }), fc.constant(65536)),
  compression: fc.oneof(
    { arbitrary: fc.constant({ codec: 'none' as const }), weight: 6 },
    fc.record({ codec: fc.constantFrom('gzip' as const, 'zstd' as const), mutateCompressed: fc.boolean() }),
  ),
});

// ---- generated layers: few names, so entries collide, climb and pass through each other -------

/** Names that stay inside mostly (a layer with one bad name is refused whole), sometimes climb or start at '/'. */
const component = fc.oneof(
  { arbitrary: fc.constantFrom('a', 'b', 'c', '.wh.a', '.wh.b', '.wh..wh..opq', '.'), weight: 30 },
  fc.constantFrom('..', ''),
);
const entryPath = fc
  .tuple(
    fc.array(component, { minLength: 1, maxLength: 3 }),
    fc.oneof({ arbitrary: fc.constantFrom('', './'), weight: 30 }, fc.constant('/')),
    fc.constantFrom('', '', '', '/'),
  )
  .map(([parts, lead, trail]) => lead + parts.join('/') + trail);
const linkTarget = fc.oneof(entryPath, fc.constantFrom('/', '/etc/passwd', '../../sentinel/file', '../sentinel', '.', 'a/b/c'));

type GenEntry = { type: '0' | '1' | '2' | '5' | '6' | '3'; name: string; target: string; size: number; longName: boolean; paxPath: boolean };

const genEntry: fc.Arbitrary<GenEntry> = fc.record({
  type: fc.constantFrom('0', '0', '0', '1', '2', '2', '5', '5', '6', '3'),
  name: entryPath,
  target: linkTarget,
  size: fc.oneof({ arbitrary: fc.nat(100), weight: 20 }, fc.constant((1 << 20) + 1)),
  longName: fc.boolean(),
  paxPath: fc.boolean(),
});

/** A layer of generated entries, names carried by the ustar field, a GNU long name or a PAX path. */
function generatedLayer(entries: GenEntry[]): Buffer {
  return tarOf(
    ...entries.map((e) => {
      const data = e.type === '0' ? Buffer.alloc(e.size, 0x61) : Buffer.alloc(0);
      const body = entry({ name: e.longName || e.paxPath ? 'placeholder' : e.name, type: e.type, linkname: e.target, mode: 0o755, devmajor: 1, devminor: 3 }, data);
      if (e.paxPath) return Buffer.concat([pax({ path: e.name }), body]);
      if (e.longName) return Buffer.concat([gnuLong(e.name), body]);
      return body;
    }),
  );
}

// ---- generated layers with distinct names: differential against GNU tar ----------------------

type TreeLeaf = { type: '0' | '1' | '2' | '3' | '6'; data: number; mode: number; uid: number; mtime: number; nsec: number; carrier: 'ustar' | 'gnu' | 'pax'; target: string };

const treeLeaf: fc.Arbitrary<TreeLeaf> = fc.record({
  type: fc.constantFrom('0', '0', '0', '1', '2', '3', '6'),
  data: fc.oneof({ arbitrary: fc.nat(3000), weight: 30 }, fc.constant((1 << 20) + 513)),
  mode: fc.nat(0o7777),
  uid: fc.oneof(fc.nat(70000), fc.constant(3_000_000)),
  mtime: fc.integer({ min: 0, max: 2 ** 33 - 1 }),
  nsec: fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, fc.integer({ min: 1, max: 999_999_999 })),
  carrier: fc.constantFrom('ustar', 'gnu', 'pax'),
  target: fc.constantFrom('a', '../b', '/etc/passwd', 'x/y/z', `${'t'.repeat(150)}`),
});
const treePath = fc.array(fc.constantFrom('a', 'b', 'c', `${'l'.repeat(70)}`, `${'m'.repeat(120)}`), { minLength: 1, maxLength: 3 }).map((p) => p.join('/'));

const PARENT: TreeLeaf = { type: '0', data: 0, mode: 0o755, uid: 0, mtime: 1_700_000_000, nsec: 0, carrier: 'ustar', target: '' };

/** A layer as a tree writer would make it: distinct names, every parent an entry before its children, hardlinks to earlier files. */
function treeLayer(leaves: [string, TreeLeaf][]): Buffer {
  const byPath = new Map(leaves);
  const dirs = new Set<string>();
  for (const path of byPath.keys()) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  const files: string[] = [];
  const parts: Buffer[] = [];
  for (const path of [...new Set([...dirs, ...byPath.keys()])].sort()) {
    let leaf = byPath.get(path) ?? PARENT;
    let type: string = dirs.has(path) ? '5' : leaf.type;
    if (type === '1' && files.length === 0) type = '0';
    const name = type === '5' ? `${path}/` : path;
    const linkname = type === '1' ? files[leaf.data % files.length]! : type === '2' ? leaf.target : '';
    // A link entry carries its target's times, as real writers write it: GNU tar (the oracle here)
    // leaves the inode's times alone, containerd (and stratum) apply the link entry's.
    if (type === '1') leaf = { ...leaf, mtime: byPath.get(linkname)!.mtime, nsec: byPath.get(linkname)!.nsec };
    const records: Record<string, string> = {};
    if (leaf.nsec) records.mtime = `${leaf.mtime}.${String(leaf.nsec).padStart(9, '0')}`;
    if (leaf.carrier === 'pax' || Buffer.byteLength(name) > 100) records.path = name;
    if (Buffer.byteLength(linkname) > 100) records.linkpath = linkname;
    if (leaf.carrier === 'gnu' && records.path) {
      delete records.path;
      parts.push(gnuLong(name));
    }
    if (Object.keys(records).length > 0) parts.push(pax(records));
    const data = type === '0' ? Buffer.alloc(leaf.data, `${path}:`) : Buffer.alloc(0);
    parts.push(entry({ name: name.slice(0, 100), type, linkname: linkname.slice(0, 100), mode: leaf.mode, uid: leaf.uid, gid: leaf.uid, mtime: leaf.mtime, devmajor: 1, devminor: 7 }, data));
    if (type === '0') files.push(path);
  }
  return tarOf(...parts);
}

/** Digit runs of the buffer: PAX record lengths and values, sparse maps, octal fields. */
function digitRuns(b: Buffer): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < b.length; i++) {
    if (b[i]! < 48 || b[i]! > 57) continue;
    let j = i;
    while (j < b.length && b[j]! >= 48 && b[j]! <= 57) j++;
    runs.push([i, j]);
    i = j;
  }
  return runs;
}

function mutate(c: Case): Buffer {
  const seed = SEEDS[c.seed]!;
  const z = c.compression;
  const compress = (b: Buffer) => (z.codec === 'gzip' ? gzipSync(b) : z.codec === 'zstd' ? zstdCompress(b) : b);
  const compressedFirst = z.codec !== 'none' && z.mutateCompressed;
  let b = compressedFirst ? compress(seed.bytes) : Buffer.from(seed.bytes);
  for (const m of c.mutations) {
    const pos = b.length === 0 ? 0 : ('pos' in m ? m.pos % b.length : 0);
    switch (m.kind) {
      case 'flip':
        if (b.length) b[pos] = b[pos]! ^ (1 << m.bit);
        break;
      case 'byte':
        if (b.length) b[pos] = m.value;
        break;
      case 'truncate':
        b = b.subarray(0, pos);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, pos), m.bytes, b.subarray(pos)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, pos), b.subarray(pos + m.length)]);
        break;
      case 'field': {
        const at = seed.headers[m.header % seed.headers.length]!;
        const [off, len] = FIELDS[m.field];
        if (at + 512 > b.length) break;
        b.fill(0, at + off, at + off + len);
        Buffer.from(m.value).copy(b, at + off, 0, len);
        break;
      }
      case 'number': {
        const runs = digitRuns(b);
        if (runs.length === 0) break;
        const [start, end] = runs[m.index % runs.length]!;
        let digits = m.digits;
        if (m.sameLength) digits = digits.padStart(end - start, '0').slice(-(end - start));
        b = Buffer.concat([b.subarray(0, start), Buffer.from(digits), b.subarray(end)]);
        break;
      }
    }
  }
  if (compressedFirst) return b;
  if (c.fixChecksums) for (const at of seed.headers) if (at + 512 <= b.length) fixChecksum(b, at);
  return compress(b);
}

/** Rethrows a property's failure with its input in base64, ready for REGRESSIONS. */
function failWithInput(err: unknown, bytes: Buffer): never {
  if (err instanceof Error) err.message += `\ninput (base64, for REGRESSIONS in fuzz-corpus.ts): ${bytes.toString('base64')}`;
  throw err;
}

function* chunks(b: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

// ---- properties ---------------------------------------------------------------------------

/** Reads a whole archive; throws only TarFormatError; checks the event stream is well formed and bounded. */
function readArchive(bytes: Buffer, chunk: number): void {
  const reader = new TarReader();
  const bound = 4 * bytes.length + 100;
  let events = 0;
  let file: { size: number; got: number } | null = null;
  let inEntry = false;
  for (const c of chunks(bytes, chunk)) {
    reader.push(c);
    for (let ev = reader.next(); ev; ev = reader.next()) {
      assert.ok(++events <= bound, `more than ${bound} events from ${bytes.length} bytes`);
      switch (ev.kind) {
        case 'entry':
          assert.ok(!inEntry, 'entry inside an entry');
          inEntry = true;
          assert.ok(Number.isSafeInteger(ev.header.size) && ev.header.size >= 0, `size ${ev.header.size}`);
          assert.ok(Number.isSafeInteger(ev.header.mtime.sec) && ev.header.mtime.nsec >= 0 && ev.header.mtime.nsec < 1e9, 'mtime');
          file = ev.header.type === 'file' ? { size: ev.header.size, got: 0 } : null;
          break;
        case 'data':
        case 'hole': {
          const n = ev.kind === 'data' ? ev.chunk.length : ev.length;
          assert.ok(inEntry && n > 0, `${ev.kind} of ${n} outside an entry`);
          assert.ok(file, `${ev.kind} for a non-file`);
          file.got += n;
          assert.ok(file.got <= file.size, `content past the size ${file.size}`);
          break;
        }
        case 'entryEnd':
          assert.ok(inEntry, 'entryEnd outside an entry');
          if (file) assert.equal(file.got, file.size, 'content short of the size');
          inEntry = false;
          break;
      }
    }
  }
  reader.finish();
}

/** How cases ended, by kind of outcome (digits and quoted parts blanked), for the test's diagnostics. */
type Outcomes = Map<string, number>;
const outcome = (seen: Outcomes | undefined, what: string) => seen?.set(what, (seen.get(what) ?? 0) + 1);
const kindOf = (message: string) => message.replace(/"(?:[^"\\]|\\.)*"/g, '…').replace(/\d+/g, 'N').slice(0, 90);
const report = (t: { diagnostic(message: string): void }, seen: Outcomes) => {
  for (const [k, n] of [...seen].sort((a, b) => b[1] - a[1])) t.diagnostic(`${n}× ${k}`);
};

function readerProperty(bytes: Buffer, chunk: number, seen?: Outcomes): void {
  try {
    readArchive(bytes, chunk);
    outcome(seen, 'read whole');
  } catch (err) {
    if (!(err instanceof TarFormatError)) throw err;
    outcome(seen, kindOf(err.message));
  }
}

const openFds = () => readdirSync('/proc/self/fd').length;

/** A root beside sentinels: anything written outside the root changes what `outside()` sees. */
class Arena {
  private count = 0;
  constructor(readonly base: string) {}

  static async make(): Promise<Arena> {
    const outer = await tmp.make('fuzz');
    const base = join(outer, 'inner');
    await mkdir(join(base, 'sentinel'), { recursive: true });
    await writeFile(join(base, 'sentinel', 'file'), 'sentinel');
    await writeFile(join(outer, 'sentinel'), 'sentinel');
    return new Arena(base);
  }

  async outside(): Promise<string> {
    const outer = join(this.base, '..');
    const parts = [
      (await readdir(outer)).sort().join(','),
      (await readdir(this.base)).sort().join(','),
      (await readdir(join(this.base, 'sentinel'))).join(','),
      await readFile(join(this.base, 'sentinel', 'file'), 'utf8'),
      await readFile(join(outer, 'sentinel'), 'utf8'),
      String((await stat(join(this.base, 'sentinel'))).mtimeMs),
    ];
    return parts.join('|');
  }

  async root(): Promise<string> {
    const root = join(this.base, `root-${this.count++}`);
    await mkdir(root);
    return root;
  }
}

async function applyProperty(arena: Arena, expectedOutside: string, bytes: Buffer, chunk: number, mode: 'full' | 'overlay', seen?: Outcomes): Promise<void> {
  const root = await arena.root();
  const fds = openFds();
  let timer: NodeJS.Timeout | undefined;
  try {
    const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('applyLayer did not finish in 20 s')), 20_000)));
    const applying = applyLayer(Readable.from(chunks(bytes, chunk)), root, { mode, subject: 'fuzz layer' }).then(
      () => undefined,
      (err: unknown) => err,
    );
    const err = await Promise.race([applying, hang]);
    outcome(seen, err === undefined ? 'applied' : err instanceof StratumError ? `${err.code} ${kindOf(err.message.replace('fuzz layer: ', ''))}` : 'other');
    if (err !== undefined) {
      assert.ok(err instanceof StratumError, `not a StratumError: ${(err as Error)?.stack ?? String(err)}`);
      assert.ok(APPLY_CODES.has(err.code), `unexpected code ${err.code}: ${err.message}`);
      const cause = err.cause;
      // A programming error wrapped as a layer error is still a bug.
      assert.ok(!(cause instanceof TypeError || cause instanceof RangeError || cause instanceof ReferenceError), `bug behind ${err.code}: ${(cause as Error)?.stack}`);
    }
  } finally {
    clearTimeout(timer);
    await rm(root, { recursive: true, force: true });
  }
  assert.equal(openFds(), fds, 'file descriptors left open');
  assert.equal(await arena.outside(), expectedOutside, 'something outside the root changed');
}

describe('fuzzing the tar reader and applyLayer', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  before(() => {
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUnhandled);
  });
  after(() => {
    process.off('unhandledRejection', onUnhandled);
    process.off('uncaughtException', onUnhandled);
  });

  test('every seed is a valid archive (so mutations start from something that unpacks)', () => {
    for (const s of SEEDS) assert.doesNotThrow(() => readArchive(s.bytes, 100), s.name);
  });

  test('the check of what is outside the root can fail: a file beside the root is seen', { skip }, async () => {
    const arena = await Arena.make();
    const expected = await arena.outside();
    await writeFile(join(arena.base, 'escaped'), 'x');
    await assert.rejects(applyProperty(arena, expected, SEEDS[0]!.bytes, 512, 'full'), /outside the root changed/);
  });

  test(`the reader: only TarFormatError, well-formed events, bounded (${READER_RUNS} cases, seed ${SEED})`, (t) => {
    const seen: Outcomes = new Map();
    fc.assert(
      fc.property(caseArb, (c) => {
        const bytes = mutate({ ...c, compression: { codec: 'none' } });
        try {
          readerProperty(bytes, c.chunk, seen);
        } catch (err) {
          failWithInput(err, bytes);
        }
      }),
      { seed: SEED, numRuns: READER_RUNS },
    );
    report(t, seen);
  });

  for (const mode of ['full', 'overlay'] as const) {
    test(`applyLayer ${mode}: typed errors only, no hang, nothing outside the root, no fd left open (${APPLY_RUNS} cases)`, { skip }, async (t) => {
      const arena = await Arena.make();
      const expected = await arena.outside();
      const seen: Outcomes = new Map();
      await fc.assert(
        fc.asyncProperty(caseArb, async (c) => {
          const bytes = mutate(c);
          await applyProperty(arena, expected, bytes, c.chunk, mode, seen).catch((err: unknown) => failWithInput(err, bytes));
        }),
        { seed: SEED + (mode === 'full' ? 1 : 2), numRuns: APPLY_RUNS, timeout: 30_000 },
      );
      assert.deepEqual(unhandled, [], 'unhandled rejections or exceptions');
      report(t, seen);
    });
  }

  for (const mode of ['full', 'overlay'] as const) {
    test(`applyLayer ${mode} on generated layers (colliding, climbing, linked names): the same properties (${APPLY_RUNS / 2} cases)`, { skip }, async (t) => {
      const arena = await Arena.make();
      const expected = await arena.outside();
      const seen: Outcomes = new Map();
      await fc.assert(
        fc.asyncProperty(fc.array(genEntry, { minLength: 1, maxLength: 12 }), fc.constantFrom(7, 512, 65536), async (entries, chunk) => {
          const bytes = generatedLayer(entries);
          await applyProperty(arena, expected, bytes, chunk, mode, seen).catch((err: unknown) => failWithInput(err, bytes));
        }),
        { seed: SEED + (mode === 'full' ? 3 : 4), numRuns: APPLY_RUNS / 2, timeout: 30_000 },
      );
      assert.deepEqual(unhandled, [], 'unhandled rejections or exceptions');
      report(t, seen);
    });
  }

  test(`differential: generated trees (distinct names, every entry type, long names by ustar, GNU or PAX) unpack as GNU tar unpacks them (${APPLY_RUNS / 6} cases)`, { skip }, async (t) => {
    const missing = await missingTool('tar');
    if (missing) return t.skip(missing);
    const dir = await tmp.make('fuzz-vs-gnu-tar');
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.tuple(treePath, treeLeaf), { minLength: 1, maxLength: 15, selector: ([p]) => p }), async (leaves) => {
        const bytes = treeLayer(leaves);
        const archive = join(dir, 'layer.tar');
        await writeFile(archive, bytes);
        const { root } = await assertUnpacksLikeGnuTar(archive, tmp).catch((err: unknown) => failWithInput(err, bytes));
        await rm(join(root, '..'), { recursive: true });
      }),
      { seed: SEED + 5, numRuns: APPLY_RUNS / 6, timeout: 30_000 },
    );
  });

  test(`regressions (${REGRESSIONS.length}) replay through the reader and applyLayer in both modes`, { skip }, async () => {
    const arena = await Arena.make();
    const expected = await arena.outside();
    for (const { what, bytes, applies } of REGRESSIONS) {
      for (const chunk of [bytes.length || 1, 1, 512]) readerProperty(bytes, chunk);
      if (applies) for (const chunk of [bytes.length || 1, 7]) assert.doesNotThrow(() => readArchive(bytes, chunk), what);
      for (const mode of ['full', 'overlay'] as const) {
        if (applies) {
          const root = await arena.root();
          await applyLayer(Readable.from([bytes]), root, { mode, subject: what });
          await rm(root, { recursive: true });
        }
        await applyProperty(arena, expected, bytes, 4096, mode).catch((err: Error) => assert.fail(`${what}: ${err.message}`));
      }
    }
    assert.deepEqual(unhandled, [], 'unhandled rejections or exceptions');
  });
});
