/**
 * Edges where stratum follows containerd's applier (the oracle issue 8 names), each checked in
 * full and overlay mode on a real root:
 * - times before 1970 or after 2262-04-11 become the epoch (containerd's boundTime);
 * - an entry named `/` (umoci insert at the root writes one) is the root itself, not refused;
 * - a whiteout, then a directory of the same name in the same layer: a plain directory that merges
 *   with the one below (no opaque marker, the lower entries are kept);
 * - a hardlink entry's times go to the shared inode (containerd sets them after os.Link);
 * - a layer that ends right after the last entry's data, without padding or end-of-archive blocks
 *   (umoci 0.4.7 writes them), is complete, as Go's archive/tar reads it.
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { applyLayer } from '../../src/unpack/apply.js';
import { entry, pax, tarOf } from '../fixtures/hostile/tar-writer.js';
import { nativeOrSkip } from '../helpers/native.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());
const { skip } = nativeOrSkip('owners, trusted xattrs');

const apply = (layer: Buffer, root: string, mode: 'full' | 'overlay') => applyLayer(Readable.from([layer]), root, { mode, subject: 'edge layer' });

describe("containerd's applier at the edges", { skip }, () => {
  for (const mode of ['full', 'overlay'] as const) {
    test(`${mode}: mtimes before 1970 and after 2262 are the epoch, times between are kept`, async () => {
      const root = await tmp.make(`times-${mode}`);
      await apply(
        tarOf(
          pax({ mtime: '-86400.5' }), entry({ name: 'before-1970' }, 'x'),
          pax({ mtime: '9223372037' }), entry({ name: 'after-2262' }, 'x'),
          pax({ mtime: '253402300799' }), entry({ name: 'year-9999' }, 'x'),
          pax({ mtime: '4102444800.25' }), entry({ name: 'year-2100' }, 'x'),
          entry({ name: 'd/', type: '5', mtime: 1 }),
        ),
        root,
        mode,
      );
      for (const name of ['before-1970', 'after-2262', 'year-9999']) assert.equal((await lstat(join(root, name), { bigint: true })).mtimeNs, 0n, name);
      assert.equal((await lstat(join(root, 'year-2100'), { bigint: true })).mtimeNs, 4102444800_250_000_000n);
      assert.equal((await lstat(join(root, 'd'))).mtimeMs, 1000);
    });

    test(`${mode}: an entry named "/" is the root itself; other absolute names stay refused`, async () => {
      const root = await tmp.make(`slash-${mode}`);
      await apply(tarOf(entry({ name: '/', type: '5', mode: 0o755 }), entry({ name: 'x' }, 'x')), root, mode);
      assert.deepEqual(await readdir(root), ['x']);
      await assert.rejects(apply(tarOf(entry({ name: '/etc/x' }, 'x')), await tmp.make(`abs-${mode}`), mode), { code: 'ERR_UNSAFE_ENTRY' });
    });
  }

  for (const mode of ['full', 'overlay'] as const) {
    test(`${mode}: a hardlink entry's mtime is the shared inode's`, async () => {
      const root = await tmp.make(`link-times-${mode}`);
      await apply(tarOf(entry({ name: 'f', mtime: 1000 }, 'data'), entry({ name: 'h', type: '1', linkname: 'f', mtime: 2000 })), root, mode);
      const [f, h] = [await lstat(join(root, 'f')), await lstat(join(root, 'h'))];
      assert.equal(f.ino, h.ino);
      assert.equal(f.mtimeMs, 2_000_000);
    });

    test(`${mode}: a layer without the last entry's padding and without end-of-archive blocks is complete`, async () => {
      const root = await tmp.make(`no-padding-${mode}`);
      const whole = tarOf(entry({ name: 'a' }, 'first'), entry({ name: 'b' }, 'last'));
      // Cut right after b's 4 data bytes: no padding, no zero blocks.
      const cut = whole.subarray(0, 512 + 512 + 512 + 4);
      await apply(cut, root, mode);
      assert.deepEqual((await readdir(root)).sort(), ['a', 'b']);
      // Cut inside b's data: still a truncated tar.
      await assert.rejects(apply(whole.subarray(0, 512 + 512 + 512 + 2), await tmp.make(`cut-data-${mode}`), mode), { code: 'ERR_INVALID_LAYER' });
    });
  }

  test('full: a whiteout, then a directory of that name in the same layer: merged with the lower directory', async () => {
    const root = await tmp.make('wh-recreate-full');
    await mkdir(join(root, 'y'));
    await writeFile(join(root, 'y', 'lower'), 'lower');
    await apply(tarOf(entry({ name: '.wh.y' }), entry({ name: 'y/', type: '5', mode: 0o700 }), entry({ name: 'y/new' }, 'new')), root, 'full');
    assert.deepEqual((await readdir(join(root, 'y'))).sort(), ['lower', 'new']);
    assert.equal((await lstat(join(root, 'y'))).mode & 0o7777, 0o700);
  });

  test('full: a whiteout, then a file of that name: the lower directory is gone', async () => {
    const root = await tmp.make('wh-file-full');
    await mkdir(join(root, 'y'));
    await writeFile(join(root, 'y', 'lower'), 'lower');
    await apply(tarOf(entry({ name: '.wh.y' }), entry({ name: 'y' }, 'file now')), root, 'full');
    assert.ok((await lstat(join(root, 'y'))).isFile());
  });

  test('full: a whiteout, then an entry below it without a directory entry: a fresh directory, the lower entries gone', async () => {
    const root = await tmp.make('wh-implicit-full');
    await mkdir(join(root, 'y'));
    await writeFile(join(root, 'y', 'lower'), 'lower');
    await apply(tarOf(entry({ name: '.wh.y' }), entry({ name: 'y/new' }, 'new')), root, 'full');
    assert.deepEqual(await readdir(join(root, 'y')), ['new']);
  });

  test('overlay: a whiteout, then a directory of that name: a plain directory, no opaque marker', async () => {
    const root = await tmp.make('wh-recreate-overlay');
    await apply(tarOf(entry({ name: '.wh.y' }), entry({ name: 'y/', type: '5' }), entry({ name: 'y/new' }, 'new')), root, 'overlay');
    const st = await lstat(join(root, 'y'));
    assert.ok(st.isDirectory());
    const { lgetxattrs } = await import('../../src/sys/native.js');
    assert.equal(lgetxattrs(join(root, 'y'))['trusted.overlay.opaque'], undefined);
  });
});
