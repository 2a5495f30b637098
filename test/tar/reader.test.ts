/**
 * The tar reader against real writers (python3 tarfile, GNU tar, bsdtar): long names in every
 * format (PAX path, GNU long names, ustar prefix, names cut short at a slash), numeric fields
 * (base-256, negative and far-future times, PAX fractions) and PAX global headers. Archives are
 * made at run time; each is unpacked by stratum (full mode) and by GNU tar and the trees compared.
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TarReader, type TarEvent, type TarHeader } from '../../src/tar/reader.js';
import { entry, tarOf } from '../fixtures/hostile/tar-writer.js';
import { nativeOrSkip } from '../helpers/native.js';
import { assertUnpacksLikeGnuTar, gnuTarExtract, missingTool, pythonHeader, pythonTar, run, stratumExtract, type PyEntry } from '../helpers/tar-tools.js';
import { TempDirs } from '../helpers/tmp.js';
import { assertSameTree, snapshotTree } from '../helpers/tree.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());
const { skip: nativeSkip } = nativeOrSkip('chown to archive owners');
const MTIME = 1700000000;

/** Every event of a whole archive, fed in chunks of `step` bytes. */
function readAll(archive: Buffer, step = archive.length): TarEvent[] {
  const reader = new TarReader();
  const events: TarEvent[] = [];
  for (let i = 0; i < archive.length; i += step) {
    reader.push(archive.subarray(i, i + step));
    for (let ev = reader.next(); ev; ev = reader.next()) events.push(ev);
  }
  reader.finish();
  return events;
}

const headers = (events: TarEvent[]): TarHeader[] => events.flatMap((e) => (e.kind === 'entry' ? [e.header] : []));

/**
 * A path of exactly n bytes under top/, with a slash at byte 99: a ustar name field (100 bytes)
 * holding it cut short ends in '/', which once made a file look like a directory.
 */
function longPath(n: number, leaf: string): string {
  if (n <= 100) return `top/${leaf.repeat(n - 4)}`;
  let path = `top/${'p'.repeat(95)}/`;
  while (n - path.length > 201) path += `${'c'.repeat(200)}/`;
  return path + leaf.repeat(n - path.length);
}

/** The longest stays below PATH_MAX with the temp dir in front (the tree helpers use absolute paths); the reader test below takes 4096. */
const LENGTHS = [99, 100, 101, 155, 156, 255, 256, 4000];

/** Per length: a file, a directory, a symlink and a hardlink whose targets are that long; every parent as an entry. */
function longNameEntries(): PyEntry[] {
  const leaves: PyEntry[] = [];
  for (const n of LENGTHS) {
    const file = longPath(n, 'f');
    leaves.push({ name: file, type: 'file', data: `content of the ${n}-byte path\n`, mtime: MTIME });
    leaves.push({ name: longPath(n, 'd'), type: 'dir', mode: 0o750, mtime: MTIME });
    leaves.push({ name: `top/zs${n}`, type: 'symlink', linkname: file, mode: 0o777, mtime: MTIME });
    leaves.push({ name: `top/zh${n}`, type: 'hardlink', linkname: file, mtime: MTIME });
  }
  const dirs = new Set<string>();
  for (const e of leaves) {
    const parts = e.name.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  // Depth-first order, as a writer walking a tree puts it (GNU tar sets a directory's time once
  // it sees an entry outside it; stratum at the end), hardlinks (top/zh…) after their targets.
  const all = [...[...dirs].map((name): PyEntry => ({ name, type: 'dir', mtime: MTIME })), ...leaves];
  return all.sort((a, b) => (a.name < b.name ? -1 : 1));
}

describe('long names from real writers', { skip: nativeSkip }, () => {
  let missing: string | undefined;
  let missingBsdtar: string | undefined;
  before(async () => {
    missing = await missingTool('python3', 'tar');
    missingBsdtar = missing ?? (await missingTool('bsdtar'));
  });

  /** Every entry name that must be in the tree (the formats that can hold them all). */
  async function assertHolds(root: string, entries: PyEntry[]): Promise<void> {
    for (const e of entries) {
      const st = await lstat(join(root, e.name)).catch(() => null);
      assert.ok(st, `${e.name.length}-byte ${e.type} ${JSON.stringify(e.name.slice(0, 60))}… is missing`);
      const want = e.type === 'dir' ? st.isDirectory() : e.type === 'symlink' ? st.isSymbolicLink() : st.isFile();
      assert.ok(want, `${e.name.length}-byte ${JSON.stringify(e.name.slice(0, 60))}… is not a ${e.type}`);
      if (e.type === 'file') assert.equal(await readFile(join(root, e.name), 'utf8'), e.data);
    }
  }

  for (const format of ['pax', 'gnu', 'ustar'] as const) {
    test(`python3 tarfile, ${format} format: names of ${LENGTHS.join('/')} bytes unpack as GNU tar unpacks them`, async (t) => {
      if (missing) return t.skip(missing);
      const dir = await tmp.make(`py-${format}`);
      const archive = join(dir, 'layer.tar');
      const entries = longNameEntries();
      const refused = await pythonTar(archive, format, entries);
      const { root } = await assertUnpacksLikeGnuTar(archive, tmp);
      if (format === 'ustar') {
        // ustar holds 100-byte names, or 256 split at a slash into prefix and name; tarfile refuses the rest.
        assert.ok(refused.length > 0 && refused.every((r) => /too long/.test(r)), refused.join('; '));
        await assertHolds(root, entries.filter((e) => Buffer.byteLength(e.name) <= 100 && Buffer.byteLength(e.linkname ?? '') <= 100));
      } else {
        assert.deepEqual(refused, []);
        await assertHolds(root, entries);
      }
    });
  }

  test('the reader takes the type from the final name: a PAX file whose ustar name is cut at a slash stays a file, its data read', async (t) => {
    if (missing) return t.skip(missing);
    const dir = await tmp.make('py-cut');
    const archive = join(dir, 'cut.tar');
    const name = `${'d'.repeat(99)}/file`;
    await pythonTar(archive, 'pax', [{ name, type: 'file', data: 'hello' }, { name: 'after', type: 'file', data: 'next' }]);
    const bytes = await readFile(archive);
    assert.equal(bytes.toString('latin1', 1024, 1124), `${'d'.repeat(99)}/`, 'python cut the ustar name at the slash');
    for (const step of [bytes.length, 512, 7]) {
      const events = readAll(bytes, step);
      assert.deepEqual(headers(events).map((h) => [h.name, h.type, h.size]), [
        [name, 'file', 5],
        ['after', 'file', 4],
      ]);
    }
  });

  test('a regular-file entry whose final name ends in a slash is a directory; the data it declares is skipped (bsdtar resyncs to the same next header)', async (t) => {
    if (missingBsdtar) return t.skip(missingBsdtar);
    const dir = await tmp.make('slash-file');
    const archive = join(dir, 'layer.tar');
    await writeFile(archive, tarOf(entry({ name: 'a/b/', type: '0', mode: 0o750 }, 'data of a directory'), entry({ name: 'after' }, 'next')));
    assert.deepEqual(headers(readAll(await readFile(archive), 5)).map((h) => [h.name, h.type, h.size]), [
      ['a/b/', 'dir', 0],
      ['after', 'file', 4],
    ]);
    const root = join(dir, 'root');
    await stratumExtract(archive, root);
    const ref = join(dir, 'bsdtar');
    await mkdir(ref);
    // bsdtar reports the archive damaged (exit 1) and retries at the next valid header.
    await run('bsdtar', ['-xpf', archive, '-C', ref, '--numeric-owner']).catch((err: Error) => assert.match(String(err), /Damaged tar archive/));
    assertSameTree(await snapshotTree(root), await snapshotTree(ref), { names: ['stratum', 'bsdtar'], ignore: (p) => p === '.' || p === 'a' });
    assert.ok((await lstat(join(root, 'a/b'))).isDirectory());
  });

  test('a 4 KiB name (4096 bytes) and link name from python3 tarfile, PAX and GNU formats, read whole', async (t) => {
    if (missing) return t.skip(missing);
    const dir = await tmp.make('py-4k');
    const name = longPath(4096, 'f');
    for (const format of ['pax', 'gnu'] as const) {
      const archive = join(dir, `${format}.tar`);
      await pythonTar(archive, format, [
        { name, type: 'file', data: 'four k' },
        { name: 'link', type: 'symlink', linkname: name },
      ]);
      const events = readAll(await readFile(archive), 100);
      assert.deepEqual(headers(events).map((h) => [Buffer.byteLength(h.name), h.type, h.size, Buffer.byteLength(h.linkname)]), [
        [4096, 'file', 6, 0],
        [4, 'symlink', 0, 4096],
      ]);
      assert.equal(headers(events)[0]!.name, name);
    }
  });

  const gnuFormats = ['gnu', 'oldgnu', 'posix', 'ustar', 'v7'] as const;
  const bsdFormats = ['pax', 'ustar', 'gnutar'] as const;
  const writers = [...gnuFormats.map((f) => ['GNU tar', f] as const), ...bsdFormats.map((f) => ['bsdtar', f] as const)];
  for (const [tool, format] of writers) {
    test(`${tool} --format=${format}: the long-name tree unpacks as GNU tar unpacks it`, async (t) => {
      const skipReason = tool === 'bsdtar' ? missingBsdtar : missing;
      if (skipReason) return t.skip(skipReason);
      const dir = await tmp.make(`${tool === 'GNU tar' ? 'gnutar' : 'bsdtar'}-${format}`);
      // The source tree: GNU tar's extraction of python's PAX archive of it.
      const entries = longNameEntries();
      await pythonTar(join(dir, 'src.tar'), 'pax', entries);
      const src = join(dir, 'src');
      await gnuTarExtract(join(dir, 'src.tar'), src);
      const archive = join(dir, 'layer.tar');
      const complete = !['ustar', 'v7'].includes(format);
      try {
        if (tool === 'GNU tar') await run('tar', [`--format=${format}`, '-cf', archive, '-C', src, 'top']);
        else await run('bsdtar', ['--format', format, '-cf', archive, '-C', src, 'top']);
      } catch (err) {
        // Formats without long names leave those entries out, say so and fail; what they did write must still unpack alike.
        if (complete || !/too long|Can't translate|Pathname|Linkname/i.test(String(err))) throw err;
      }
      const { root } = await assertUnpacksLikeGnuTar(archive, tmp, { dirMtimes: tool === 'GNU tar' });
      if (complete) {
        // The source tree is the truth for directory times too.
        await assertHolds(root, entries);
        assertSameTree(await snapshotTree(root), await snapshotTree(src), { names: ['stratum', 'source'], mtimes: true, ignore: (p) => p === '.' });
      }
    });
  }
});

describe('numeric fields and times from real writers', { skip: nativeSkip }, () => {
  let missing: string | undefined;
  before(async () => {
    missing = await missingTool('python3', 'tar');
  });

  const times = [
    ['1900-01-01 00:00:00', -2208988800],
    ['1969-12-31 23:59:59', -1],
    ['2500-01-01 00:00:00', 16725225600],
  ] as const;
  for (const [date, sec] of times) {
    for (const format of ['gnu', 'posix'] as const) {
      test(`GNU tar --format=${format} --mtime='${date}': mtime ${sec} read exactly, the tree otherwise as GNU tar unpacks it`, async (t) => {
        if (missing) return t.skip(missing);
        const dir = await tmp.make('mtime');
        await run('bash', ['-c', 'mkdir -p src/d && echo old > src/d/f && ln -s f src/d/l'], { cwd: dir });
        const archive = join(dir, 'layer.tar');
        await run('tar', [`--format=${format}`, `--mtime=${date}`, '-cf', archive, '-C', join(dir, 'src'), 'd'], { env: { TZ: 'UTC' } });
        const hs = headers(readAll(await readFile(archive)));
        assert.deepEqual(hs.map((h) => [h.name, h.mtime.sec]), [
          ['d/', sec],
          ['d/f', sec],
          ['d/l', sec],
        ]);
        // Times outside 1970..2262 are the writer's policy (containerd makes them the epoch), not GNU tar's.
        await assertUnpacksLikeGnuTar(archive, tmp, { mtimes: false });
      });
    }
  }

  test('PAX mtime with a fraction (GNU tar --format=posix of a file with nanoseconds)', async (t) => {
    if (missing) return t.skip(missing);
    const dir = await tmp.make('mtime-ns');
    await run('bash', ['-c', "mkdir src && echo x > src/f && touch -d '2020-01-02 03:04:05.123456789' src/f && touch -d '1960-06-01 00:00:00.25' src"], { cwd: dir, env: { TZ: 'UTC' } });
    const archive = join(dir, 'layer.tar');
    await run('tar', ['--format=posix', '-cf', archive, '-C', dir, 'src']);
    const hs = headers(readAll(await readFile(archive)));
    assert.deepEqual(hs.map((h) => [h.name, h.mtime]), [
      ['src/', { sec: -302486400, nsec: 250000000 }],
      ['src/f', { sec: 1577934245, nsec: 123456789 }],
    ]);
    // The directory's pre-1970 time is the writer's policy (containerd makes it the epoch); the file's is kept to the nanosecond.
    const { root } = await assertUnpacksLikeGnuTar(archive, tmp, { dirMtimes: false });
    assert.equal((await lstat(join(root, 'src/f'), { bigint: true })).mtimeNs, 1577934245123456789n);
  });

  for (const format of ['gnu', 'pax'] as const) {
    test(`python3 tarfile ${format}: uid/gid above 2097151 (${format === 'gnu' ? 'base-256' : 'PAX records'})`, async (t) => {
      if (missing) return t.skip(missing);
      const dir = await tmp.make('bigid');
      const archive = join(dir, 'layer.tar');
      await pythonTar(archive, format, [
        { name: 'big', type: 'file', data: 'x', uid: 3_000_000, gid: 2_097_152 },
        { name: 'max', type: 'file', data: 'y', uid: 4_294_967_294, gid: 4_000_000_000 },
      ]);
      const hs = headers(readAll(await readFile(archive)));
      assert.deepEqual(hs.map((h) => [h.name, h.uid, h.gid]), [
        ['big', 3_000_000, 2_097_152],
        ['max', 4_294_967_294, 4_000_000_000],
      ]);
      const { root } = await assertUnpacksLikeGnuTar(archive, tmp);
      const st = await lstat(join(root, 'max'));
      assert.deepEqual([st.uid, st.gid], [4_294_967_294, 4_000_000_000]);
    });
  }

  for (const format of ['gnu', 'pax'] as const) {
    test(`python3 tarfile ${format}: a size above 8 GiB (${format === 'gnu' ? 'base-256' : 'PAX size'}) streams through the reader`, async (t) => {
      if (missing) return t.skip(missing);
      const size = 8 * 1024 ** 3 + 1234;
      const header = await pythonHeader(format, { name: 'huge', type: 'file', size });
      const reader = new TarReader();
      reader.push(header);
      const first = reader.next();
      assert.ok(first?.kind === 'entry');
      assert.equal(first.header.size, size);
      const zeros = Buffer.alloc(4 << 20);
      let data = 0;
      let ended = false;
      for (let fed = 0; !ended; ) {
        if (fed < size + 512) {
          reader.push(zeros);
          fed += zeros.length;
        }
        for (let ev = reader.next(); ev; ev = reader.next()) {
          if (ev.kind === 'data') data += ev.chunk.length;
          else if (ev.kind === 'entryEnd') ended = true;
          else assert.fail(`unexpected ${ev.kind}`);
        }
      }
      assert.equal(data, size);
    });
  }

  test('a base-256 negative size or uid is refused; a negative mtime is not', () => {
    const block = Buffer.alloc(512);
    block.write('f', 0);
    block.write('0000644\0', 100);
    block.write('0000000\0', 108);
    block.write('0000000\0', 116);
    block.write('00000000000\0', 124);
    block.fill(0xff, 136, 148); // mtime -1
    block.write('0', 156);
    block.write('ustar\x0000', 257, 'latin1');
    const withChecksum = (b: Buffer) => {
      const c = Buffer.from(b);
      c.fill(32, 148, 156);
      let sum = 0;
      for (const x of c) sum += x;
      c.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
      return c;
    };
    const end = Buffer.alloc(1024);
    assert.deepEqual(headers(readAll(Buffer.concat([withChecksum(block), end])))[0]!.mtime, { sec: -1, nsec: 0 });
    for (const [field, off, len] of [['size', 124, 12], ['uid', 108, 8]] as const) {
      const bad = Buffer.from(block);
      bad.fill(0xff, off, off + len);
      assert.throws(() => readAll(Buffer.concat([withChecksum(bad), end])), new RegExp(`negative ${field}`));
    }
  });

  test('PAX global headers (python3 tarfile pax_headers) are ignored, as docker and containerd do', async (t) => {
    if (missing) return t.skip(missing);
    const dir = await tmp.make('global');
    const archive = join(dir, 'layer.tar');
    const entries: PyEntry[] = [{ name: 'a', type: 'file', data: 'a', uid: 5 }, { name: 'b', type: 'dir' }];
    await pythonTar(archive, 'pax', entries, { comment: 'made by a test' });
    const bytes = await readFile(archive);
    assert.equal(String.fromCharCode(bytes[156]!), 'g', 'python wrote a global header first');
    assert.deepEqual(headers(readAll(bytes)).map((h) => h.name), ['a', 'b/']);
    await assertUnpacksLikeGnuTar(archive, tmp);
    // Records that would change entries (GNU tar would apply them) are ignored too.
    const steering = join(dir, 'steering.tar');
    await pythonTar(steering, 'pax', entries, { path: 'elsewhere', uid: '7', mtime: '5' });
    assert.deepEqual(headers(readAll(await readFile(steering))).map((h) => [h.name, h.uid, h.mtime.sec]), [
      ['a', 5, MTIME],
      ['b/', 0, MTIME],
    ]);
  });
});
