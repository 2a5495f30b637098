/**
 * GNU sparse files as GNU tar writes them (--sparse with --format=gnu / oldgnu, and posix with
 * --sparse-version 0.0, 0.1 and 1.0): unpacked by stratum to the same files GNU tar unpacks,
 * holes kept as holes, the real size counted against maxBytes.
 */
import assert from 'node:assert/strict';
import { open, lstat, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isStratumError } from '../../src/errors.js';
import { TarReader } from '../../src/tar/reader.js';
import { nativeOrSkip } from '../helpers/native.js';
import { assertUnpacksLikeGnuTar, missingTool, run, stratumExtract } from '../helpers/tar-tools.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());
const { skip: nativeSkip } = nativeOrSkip('chown to archive owners');
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Regions written into a sparse file: [offset, text]; everything else is a hole. */
type Layout = { size: number; data: [number, string][] };

const LAYOUTS: Record<string, Layout> = {
  // Small enough to travel inline (zeros written), a trailing hole.
  inline: { size: 600 * KiB, data: [[0, 'start'], [300 * KiB, 'middle'.repeat(1000)]] },
  // Streamed: a leading hole, data at the very end (no trailing hole).
  streamed: { size: 3 * MiB, data: [[1 * MiB, 'x'.repeat(8 * KiB)], [3 * MiB - 5, 'tail!']] },
  allhole: { size: 2 * MiB, data: [] },
  // Enough regions for old GNU extension blocks and a 1.0 map of several blocks.
  many: { size: 120 * 16 * KiB + 7, data: Array.from({ length: 120 }, (_, i): [number, string] => [i * 16 * KiB, `region ${i} `.repeat(300)]) },
};

/** Writes a file with holes (python3: seek past them), then sets its size. */
async function writeSparse(path: string, layout: Layout): Promise<void> {
  const script = 'import json,sys\nspec=json.load(sys.stdin)\nwith open(spec["path"],"wb") as f:\n  for off,text in spec["data"]:\n    f.seek(off); f.write(text.encode())\n  f.truncate(spec["size"])\n';
  await run('python3', ['-c', script], { input: JSON.stringify({ path, ...layout }) });
}

const FLAVOURS: [string, string[]][] = [
  ['gnu', ['--format=gnu']],
  ['oldgnu', ['--format=oldgnu']],
  ['posix 0.0', ['--format=posix', '--sparse-version=0.0']],
  ['posix 0.1', ['--format=posix', '--sparse-version=0.1']],
  ['posix 1.0', ['--format=posix', '--sparse-version=1.0']],
];

/** Holes the reader hands out for an archive (proof that it was read as sparse). */
async function holeBytes(archive: string): Promise<number> {
  const reader = new TarReader();
  let holes = 0;
  reader.push(await readFile(archive));
  for (let ev = reader.next(); ev; ev = reader.next()) if (ev.kind === 'hole') holes += ev.length;
  reader.finish();
  return holes;
}

describe('GNU sparse files', { skip: nativeSkip }, () => {
  let missing: string | undefined;
  let src: string;
  before(async () => {
    missing = await missingTool('tar', 'python3');
    if (missing) return;
    src = join(await tmp.make('sparse-src'), 'src');
    await run('mkdir', ['-p', join(src, 'sub')]);
    for (const [name, layout] of Object.entries(LAYOUTS)) await writeSparse(join(src, 'sub', name), layout);
    await run('bash', ['-c', 'echo plain > sub/plain && touch -d 2020-01-01 sub/* sub .'], { cwd: src });
  });

  for (const [flavour, flags] of FLAVOURS) {
    test(`GNU tar --sparse ${flags.join(' ')}: every file unpacks as GNU tar unpacks it, holes as holes`, async (t) => {
      if (missing) return t.skip(missing);
      const archive = join(await tmp.make(`sparse-${flavour.replace(/\W/g, '')}`), 'layer.tar');
      await run('tar', ['--sparse', ...flags, '-cf', archive, '-C', src, 'sub']);
      const realBytes = Object.values(LAYOUTS).reduce((n, l) => n + l.size, 0);
      assert.ok((await stat(archive)).size < realBytes / 2, 'GNU tar wrote the files sparse');
      assert.ok((await holeBytes(archive)) > realBytes / 2, 'the reader read them as sparse');
      const { root } = await assertUnpacksLikeGnuTar(archive, tmp);
      for (const [name, layout] of Object.entries(LAYOUTS)) {
        const st = await lstat(join(root, 'sub', name));
        assert.equal(st.size, layout.size, name);
        const data = layout.data.reduce((n, [, text]) => n + text.length, 0);
        if (layout.size > MiB) assert.ok(st.blocks * 512 <= data + 256 * KiB, `${name}: ${st.blocks * 512} bytes allocated for ${data} bytes of data`);
      }
    });
  }

  test('overlay mode unpacks a sparse file the same', async (t) => {
    if (missing) return t.skip(missing);
    const dir = await tmp.make('sparse-overlay');
    const archive = join(dir, 'layer.tar');
    await run('tar', ['--sparse', '--format=posix', '-cf', archive, '-C', src, 'sub']);
    await stratumExtract(archive, join(dir, 'root'), { mode: 'overlay' });
    for (const name of Object.keys(LAYOUTS)) assert.ok((await readFile(join(dir, 'root/sub', name))).equals(await readFile(join(src, 'sub', name))), name);
  });
});

describe('a sparse file of more than 8 GiB', { skip: nativeSkip }, () => {
  let missing: string | undefined;
  let src: string;
  const SIZE = 9 * GiB + 3;
  const layout: Layout = { size: SIZE, data: [[0, 'head'.repeat(16 * KiB)], [5 * GiB, 'five'], [SIZE - 3, 'end']] };
  before(async () => {
    missing = await missingTool('tar', 'python3');
    if (missing) return;
    src = await tmp.make('sparse-big-src');
    await writeSparse(join(src, 'big'), layout);
    if ((await lstat(join(src, 'big'))).blocks * 512 > 16 * MiB) missing = `LOUD SKIP: ${src} keeps no holes (filesystem without sparse files)`;
  });

  for (const format of ['gnu', 'posix'] as const) {
    test(`--format=${format}: unpacks with holes, real size kept, data where it was`, async (t) => {
      if (missing) return t.skip(missing);
      const dir = await tmp.make(`sparse-big-${format}`);
      const archive = join(dir, 'layer.tar');
      await run('tar', ['--sparse', `--format=${format}`, '-cf', archive, '-C', src, 'big']);
      assert.ok((await stat(archive)).size < MiB, 'the archive holds only the data');
      const root = join(dir, 'root');
      await stratumExtract(archive, root);
      const st = await lstat(join(root, 'big'));
      assert.equal(st.size, SIZE);
      assert.ok(st.blocks * 512 < 4 * MiB, `${st.blocks * 512} bytes allocated`);
      const fh = await open(join(root, 'big'));
      try {
        for (const [offset, text] of [...layout.data, [3 * GiB, '\0'.repeat(4096)] as [number, string]]) {
          const buf = Buffer.alloc(text.length);
          await fh.read(buf, 0, buf.length, offset);
          assert.equal(buf.toString('latin1'), text, `bytes at ${offset}`);
        }
      } finally {
        await fh.close();
      }
      const sourceMtime = (await lstat(join(src, 'big'))).mtimeMs;
      assert.equal(Math.floor(st.mtimeMs / 1000), Math.floor(sourceMtime / 1000));
    });
  }

  test('the real size counts against maxBytes: one file above the limit, or two that together are', async (t) => {
    if (missing) return t.skip(missing);
    const dir = await tmp.make('sparse-big-limit');
    await run('cp', ['--sparse=always', join(src, 'big'), join(src, 'big2')]);
    const one = join(dir, 'one.tar');
    const two = join(dir, 'two.tar');
    await run('tar', ['--sparse', '--format=posix', '-cf', one, '-C', src, 'big']);
    await run('tar', ['--sparse', '--format=gnu', '-cf', two, '-C', src, 'big', 'big2']);
    for (const [archive, maxBytes, entry] of [[one, 1 * GiB, 'big'], [two, 16 * GiB, 'big2']] as const) {
      const err = await stratumExtract(archive, join(dir, `root-${maxBytes}`), { limits: { maxBytes } }).then(
        () => assert.fail(`${archive} unpacked within maxBytes=${maxBytes}`),
        (e: unknown) => e,
      );
      assert.ok(isStratumError(err, 'ERR_LIMIT_EXCEEDED'), String(err));
      assert.match(err.message, new RegExp(`entry "${entry}"`));
    }
    // Within the limit it works.
    await stratumExtract(two, join(dir, 'root-ok'), { limits: { maxBytes: 19 * GiB } });
    assert.equal((await lstat(join(dir, 'root-ok', 'big2'))).size, SIZE);
  });
});
