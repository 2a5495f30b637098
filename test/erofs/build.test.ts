/**
 * The EROFS layer writer against extraction: each layer is written as an image (fsck.erofs must
 * pass), mounted, and its tree compared with what the overlay-mode unpack of the same layer gives
 * in a directory (names, modes, owners, mtimes, xattrs, devices, hardlinks, link targets, content).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { writeLayerImage } from '../../src/erofs/build.js';
import { erofsUnavailable } from '../../src/snapshotter/erofs/erofs.js';
import { loadNative } from '../../src/sys/native.js';
import { unmountAll } from '../../src/snapshotter/mount.js';
import { snapshotTree, diffTrees, hardlinkGroups, type Tree } from '../../src/snapshotter/testsuite/tree.js';
import { applyLayer } from '../../src/unpack/apply.js';
import { applyOverlayFixups } from '../../src/unpack/overlay-fixups.js';
import { buildLayer, random, type EntrySpec } from '../fixtures/layers.js';
import { TempDirs } from '../helpers/tmp.js';

const run = promisify(execFile);
const tmp = new TempDirs();
after(() => tmp.cleanup());

const fsckMissing = await run('fsck.erofs', ['-V']).then(
  () => undefined,
  (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? 'fsck.erofs is not installed (Debian: erofs-utils)' : undefined),
);
const skip = (await erofsUnavailable()) ?? fsckMissing ?? false;
if (skip) console.error(`SKIP erofs writer tests: ${skip}`);

const T = new Date('2021-02-03T04:05:06Z');
const xattrs = (abs: string) => loadNative().lgetxattrs(abs);

interface Checked {
  image: string;
  tree: Tree;
  mounted: string;
}

/**
 * Writes `entries` as a layer, then (a) unpacks it in overlay mode into a directory, fixed up
 * against `lower` when given, and (b) writes it as an EROFS image finished against the same lower;
 * fsck.erofs on the image, then both trees must be equal, hardlinks and device numbers included.
 */
async function check(entries: EntrySpec[], options: { lower?: (dir: string) => Promise<void>; tailBudget?: number } = {}): Promise<Checked> {
  const work = await tmp.make('erofs-build');
  const layer = await buildLayer(entries, { compression: 'gzip', dir: work });
  let lower: string | undefined;
  if (options.lower) {
    lower = join(work, 'lower');
    await mkdir(lower);
    await options.lower(lower);
  }
  const ref = join(work, 'ref');
  await mkdir(ref);
  const subject = 'test layer';
  const applied = await applyLayer(createReadStream(layer.path), ref, { mode: 'overlay', subject, hasLowerLayers: lower !== undefined });
  if (applied.overlayFixups) {
    const empty = join(work, 'empty');
    await mkdir(empty, { recursive: true });
    await applyOverlayFixups(ref, lower ?? empty, applied.overlayFixups, subject);
  }
  const image = join(work, 'layer.erofs');
  const written = await writeLayerImage(createReadStream(layer.path), image, { subject, hasLowerLayers: lower !== undefined, expectedDiffId: layer.diffId, ...(options.tailBudget !== undefined ? { tailBudget: options.tailBudget } : {}) });
  assert.equal(written.diffId, layer.diffId);
  await written.image.finish(lower);
  await run('fsck.erofs', [image]);
  const mounted = join(work, 'mnt');
  await mkdir(mounted);
  loadNative().mountErofs(image, mounted);
  try {
    const want = await snapshotTree(ref, xattrs);
    const got = await snapshotTree(mounted, xattrs);
    // The root's metadata belongs to the snapshot, not the layer; directories the layer only implies are made when met.
    assert.deepEqual(diffTrees(want, got, { ignoreAttrsOf: ['.', ...impliedDirs(entries)] }), []);
    assert.deepEqual(hardlinkGroups(got), hardlinkGroups(want));
    for (const [path, e] of want) {
      if (e.type === 'char' || e.type === 'block' || e.type === 'file') {
        const [a, b] = await Promise.all([lstat(join(ref, path)), lstat(join(mounted, path))]);
        assert.equal(b.rdev, a.rdev, `${path}: device number`);
        assert.equal(b.nlink, a.nlink, `${path}: nlink`);
      }
    }
    return { image, tree: got, mounted };
  } finally {
    await unmountAll(mounted);
  }
}

/** Parents of entries that have no entry of their own. */
function impliedDirs(entries: readonly EntrySpec[]): string[] {
  const named = new Set<string>();
  const parents = new Set<string>();
  for (const e of entries) {
    const path = (e.type === 'raw' ? e.header.name : e.path).replace(/\/$/, '');
    if (e.type === 'dir' || e.type === 'opaque') named.add(path);
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) parents.add(parts.slice(0, i).join('/'));
  }
  return [...parents].filter((p) => !named.has(p));
}

describe('EROFS layer images written from tar', { skip }, () => {
  test('every entry type and its metadata: owners above 65535, ns mtimes, setuid, xattrs (binary security.capability), devices, fifos, symlinks, hardlinks', async () => {
    const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    await check([
      { type: 'file', path: 'usr/bin/late', content: 'child first' },
      { type: 'dir', path: 'usr', mode: 0o750, uid: 5, gid: 6, mtime: T },
      { type: 'dir', path: 'usr/bin', mode: 0o1777, mtime: T },
      { type: 'file', path: 'usr/bin/su', content: 'su', mode: 0o4755, mtime: T },
      { type: 'file', path: 'usr/bin/owned', content: 'o', mode: 0o2640, uid: 100000, gid: 4_000_000_000, mtime: T },
      { type: 'symlink', path: 'usr/link', target: '../etc/nowhere', mtime: T },
      { type: 'hardlink', path: 'usr/bin/su2', target: 'usr/bin/su' },
      { type: 'hardlink', path: 'usr/bin/su3', target: 'usr/bin/su' },
      { type: 'raw', header: { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 } },
      { type: 'raw', header: { name: 'dev/sda9', type: 'block-device', devmajor: 259, devminor: 70000, mode: 0o660 } },
      { type: 'raw', header: { name: 'dev/fifo', type: 'fifo', mode: 0o600 } },
      { type: 'raw', header: { name: 'cap', type: 'file', mode: 0o755, pax: { 'SCHILY.xattr.security.capability': cap.toString('latin1'), 'SCHILY.xattr.user.note': 'hi', 'SCHILY.xattr.trusted.x': 'y', mtime: '1612325106.123456789' } }, content: 'c' },
      { type: 'dir', path: 'xdir', xattrs: { 'user.a': 'b', 'trusted.overlay.opaque': 'y' } },
      { type: 'symlink', path: 'xlink', target: 'cap', xattrs: { 'trusted.sym': 'v' } },
    ]);
  });

  test('file sizes around the block: 0, 1, 4095, 4096, 4097, 8191, 8192, 8193, and 10 MB streamed', async () => {
    const sizes = [0, 1, 4095, 4096, 4097, 8191, 8192, 8193];
    const { tree } = await check([
      ...sizes.map((n): EntrySpec => ({ type: 'file', path: `f${n}`, content: random(n, n) })),
      { type: 'file', path: 'big', content: random(10_000_000, 'big') },
      { type: 'file', path: 'after-big', content: 'tail after a streamed file' },
    ]);
    assert.equal(tree.size, sizes.length + 3);
  });

  test('tails that cannot be inlined (a budget of 0; xattrs filling the block) go to data blocks', async () => {
    const fat = 'x'.repeat(3500);
    await check(
      [
        { type: 'file', path: 'a', content: random(5000, 'a') },
        { type: 'file', path: 'b', content: random(700, 'b'), xattrs: { 'user.fat': fat } },
        { type: 'file', path: 'c', content: random(10, 'c') },
      ],
      { tailBudget: 0 },
    );
    await check([
      { type: 'file', path: 'b', content: random(700, 'b'), xattrs: { 'user.fat': fat } },
      { type: 'file', path: 'c', content: random(4097 + 3000, 'c'), xattrs: { 'user.fat': fat } },
      { type: 'dir', path: 'd', xattrs: { 'user.fat': fat } },
      { type: 'file', path: 'd/x', content: 'x' },
      { type: 'symlink', path: 'longlink', target: 'y/'.repeat(1500), xattrs: { 'trusted.fat': fat } },
    ]);
  });

  test('5000 entries in one directory (many dirent blocks, looked up by name), names of 255 bytes, non-UTF-8 names, deep paths', async () => {
    const entries: EntrySpec[] = [];
    for (let i = 0; i < 5000; i++) entries.push({ type: 'file', path: `many/entry-${String(i).padStart(5, '0')}-${'n'.repeat(i % 50)}`, content: i % 7 === 0 ? '' : `c${i}` });
    entries.push({ type: 'file', path: `long/${'L'.repeat(255)}`, content: 'long' });
    entries.push({ type: 'dir', path: `long/${'D'.repeat(255)}` });
    entries.push({ type: 'raw', header: { name: 'bytes/caf\xe9-\xff', type: 'file', mode: 0o644 }, content: 'latin1' });
    entries.push({ type: 'file', path: `${Array.from({ length: 60 }, (_, i) => `d${i}`).join('/')}/leaf`, content: 'deep' });
    for (const name of ['!', '-', '.a', '..b', 'A', 'a', '~']) entries.push({ type: 'file', path: `order/${name}`, content: name });
    const { mounted } = await check(entries);
    void mounted;
  });

  test('a path repeated in the tar replaces the earlier entry; a hardlink keeps the file it linked to when that path is replaced', async () => {
    await check([
      { type: 'file', path: 'dup', content: 'first' },
      { type: 'file', path: 'dup', content: 'second', mode: 0o600 },
      { type: 'file', path: 'was-file', content: 'x' },
      { type: 'dir', path: 'was-file', mode: 0o700 },
      { type: 'file', path: 'was-file/in', content: 'in' },
      { type: 'dir', path: 'was-dir' },
      { type: 'file', path: 'was-dir/gone', content: 'gone' },
      { type: 'symlink', path: 'was-dir', target: 'dup' },
      { type: 'file', path: 'orig', content: 'original content' },
      { type: 'hardlink', path: 'link', target: 'orig' },
      { type: 'file', path: 'orig', content: 'replaced later' },
    ]);
  });

  test('whiteouts and opaque directories become overlay whiteouts, fixed up against the layers below (hardlinks into them copied up)', async () => {
    await check(
      [
        { type: 'whiteout', path: 'gone' },
        { type: 'whiteout', path: 'nothing-below' },
        { type: 'opaque', path: 'opq' },
        { type: 'file', path: 'opq/new', content: 'new' },
        { type: 'file', path: 'implied/child', content: 'parent comes from below' },
        { type: 'hardlink', path: 'linked', target: 'lowerdir/target' },
        { type: 'whiteout', path: 'sub/deeper/x' },
      ],
      {
        async lower(dir) {
          await writeFile(join(dir, 'gone'), 'gone');
          await mkdir(join(dir, 'opq'));
          await writeFile(join(dir, 'opq', 'old'), 'old');
          await mkdir(join(dir, 'implied'), { mode: 0o711 });
          await run('chown', ['1234:5678', join(dir, 'implied')]);
          await mkdir(join(dir, 'lowerdir'));
          await writeFile(join(dir, 'lowerdir', 'target'), 'lower file');
          await mkdir(join(dir, 'sub', 'deeper'), { recursive: true });
          await writeFile(join(dir, 'sub', 'deeper', 'x'), 'x');
        },
      },
    );
  });

  test('refuses what extraction refuses: .. components, a whiteout with an empty name', async () => {
    for (const entries of [
      [{ type: 'raw', header: { name: '../escape', type: 'file', mode: 0o644 }, content: 'x' }],
      [{ type: 'raw', header: { name: 'd/.wh.', type: 'file', mode: 0o644 } }],
    ] as EntrySpec[][]) {
      const work = await tmp.make('erofs-refuse');
      const layer = await buildLayer(entries, { compression: 'none', dir: work });
      const image = join(work, 'layer.erofs');
      await assert.rejects(writeLayerImage(createReadStream(layer.path), image, { subject: 'bad layer' }), { code: 'ERR_UNSAFE_ENTRY' });
      await assert.rejects(readFile(image), { code: 'ENOENT' }, 'the unfinished image is removed');
    }
  });

  test('the superblock: magic, 4 KiB blocks, checksum flag, block count matching the file', async () => {
    const { image } = await check([{ type: 'file', path: 'f', content: 'x' }]);
    const sb = (await readFile(image)).subarray(1024, 1024 + 128);
    assert.equal(sb.readUInt32LE(0), 0xe0f5e1e2);
    assert.equal(sb.readUInt32LE(8) & 1, 1);
    assert.equal(sb[12], 12);
    assert.equal(sb.readUInt32LE(36) * 4096, (await lstat(image)).size);
    assert.equal(Number(sb.readBigUInt64LE(16)), 2, 'two inodes: the root and f');
  });
});
