import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isStratumError } from '../../src/errors.js';
import type { Digest } from '../../src/oci/digest.js';
import type { NativeBinding } from '../../src/sys/native.js';
import { applyLayer } from '../../src/unpack/apply.js';
import { nativeOrSkip } from '../helpers/native.js';
import { buildLayer, random, type EntrySpec } from '../fixtures/layers.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());
const { binding, skip } = nativeOrSkip('chown, devices, trusted xattrs');

async function apply(entries: EntrySpec[], root: string, mode: 'overlay' | 'full', compression: 'gzip' | 'zstd' | 'none' = 'gzip', expectedDiffId?: Digest) {
  const layer = await buildLayer(entries, { compression, dir: await tmp.make('layer') });
  const result = await applyLayer(createReadStream(layer.path), root, { mode, subject: 'test layer', expectedDiffId: expectedDiffId ?? layer.diffId });
  return { layer, result };
}

const T = new Date('2021-02-03T04:05:06Z');

describe('applyLayer', { skip }, () => {
  for (const compression of ['gzip', 'zstd', 'none'] as const) {
    test(`round trip of every entry type and its metadata (${compression})`, async () => {
      const root = await tmp.make('apply');
      const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
      const { layer, result } = await apply(
        [
          { type: 'file', path: 'usr/bin/late', content: 'child first' },
          { type: 'dir', path: 'usr', mode: 0o750, uid: 5, gid: 6, mtime: T },
          { type: 'dir', path: 'usr/bin', mode: 0o1777, mtime: T },
          { type: 'file', path: 'usr/bin/su', content: 'su', mode: 0o4755, uid: 0, gid: 0, mtime: T },
          { type: 'file', path: 'usr/bin/owned', content: 'o', mode: 0o2640, uid: 1234, gid: 4321, mtime: T },
          { type: 'file', path: 'big.bin', content: random(3 * 1024 * 1024 + 17, 'big') },
          { type: 'symlink', path: 'usr/link', target: '../etc/nowhere', mtime: T },
          { type: 'hardlink', path: 'usr/bin/su2', target: 'usr/bin/su' },
          { type: 'raw', header: { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 } },
          { type: 'raw', header: { name: 'dev/fifo', type: 'fifo', mode: 0o600 } },
          { type: 'raw', header: { name: 'cap', type: 'file', mode: 0o755, pax: { 'SCHILY.xattr.security.capability': cap.toString('latin1'), 'SCHILY.xattr.user.note': 'hi', mtime: '1612325106.123456789' } }, content: 'c' },
        ],
        root,
        'full',
        compression,
      );
      assert.equal(result.diffId, layer.diffId);
      assert.equal((result as { compression: string }).compression, compression);
      const usr = await lstat(join(root, 'usr'));
      assert.equal(usr.mode & 0o7777, 0o750);
      assert.equal(usr.uid, 5);
      assert.equal(usr.mtime.getTime(), T.getTime(), 'directory mtime set after its children');
      assert.equal((await lstat(join(root, 'usr/bin'))).mode & 0o7777, 0o1777);
      const su = await lstat(join(root, 'usr/bin/su'));
      assert.equal(su.mode & 0o7777, 0o4755, 'setuid kept after chown');
      const owned = await lstat(join(root, 'usr/bin/owned'));
      assert.deepEqual([owned.mode & 0o7777, owned.uid, owned.gid], [0o2640, 1234, 4321]);
      assert.equal((await lstat(join(root, 'usr/bin/su2'))).ino, su.ino, 'hardlink shares the inode');
      assert.equal(await readlink(join(root, 'usr/link')), '../etc/nowhere');
      assert.equal((await lstat(join(root, 'usr/link'))).mtime.getTime(), T.getTime(), 'symlink mtime');
      assert.equal((await lstat(join(root, 'big.bin'))).size, 3 * 1024 * 1024 + 17);
      assert.equal(await readFile(join(root, 'usr/bin/late'), 'utf8'), 'child first');
      assert.ok((await lstat(join(root, 'dev/null'))).isCharacterDevice());
      assert.ok((await lstat(join(root, 'dev/fifo'))).isFIFO());
      const capStat = await lstat(join(root, 'cap'), { bigint: true });
      assert.equal(capStat.mtimeNs, 1612325106123456789n, 'ns mtime from PAX');
      const xattrs = (binding as NativeBinding).lgetxattrs(join(root, 'cap'));
      assert.deepEqual(xattrs['security.capability'], cap, 'binary xattr survives');
      assert.equal(xattrs['user.note']?.toString(), 'hi');
    });
  }

  test('a diffID mismatch is an ERR_DIGEST_MISMATCH naming the layer', async () => {
    const root = await tmp.make('apply');
    await assert.rejects(
      apply([{ type: 'file', path: 'a', content: 'a' }], root, 'full', 'gzip', `sha256:${'0'.repeat(64)}` as Digest),
      (err) => isStratumError(err, 'ERR_DIGEST_MISMATCH') && err.message.includes('test layer'),
    );
  });

  test('full mode: whiteouts delete, opaque keeps this layer entries in any order', async () => {
    const root = await tmp.make('apply');
    await apply(
      [
        { type: 'file', path: 'gone', content: 'x' },
        { type: 'file', path: 'kept', content: 'x' },
        { type: 'dir', path: 'o' },
        { type: 'file', path: 'o/lower1', content: 'x' },
        { type: 'dir', path: 'o/sub' },
        { type: 'file', path: 'o/sub/lower2', content: 'x' },
        { type: 'dir', path: 'p' },
        { type: 'file', path: 'p/lower', content: 'x' },
      ],
      root,
      'full',
    );
    await apply(
      [
        { type: 'whiteout', path: 'gone' },
        { type: 'file', path: 'own', content: 'own' },
        { type: 'whiteout', path: 'own' }, // a whiteout never hides its own layer's entry
        { type: 'file', path: 'o/sub/mine', content: 'before the marker' },
        { type: 'opaque', path: 'o' },
        { type: 'file', path: 'o/after', content: 'after the marker' },
        { type: 'opaque', path: 'p' },
        { type: 'file', path: 'p/new', content: 'n' },
      ],
      root,
      'full',
    );
    assert.equal(existsSync(join(root, 'gone')), false);
    assert.equal(await readFile(join(root, 'own'), 'utf8'), 'own');
    assert.ok(existsSync(join(root, 'kept')));
    assert.deepEqual((await readdir(join(root, 'o'))).sort(), ['after', 'sub']);
    assert.deepEqual(await readdir(join(root, 'o/sub')), ['mine']);
    assert.deepEqual(await readdir(join(root, 'p')), ['new']);
  });

  test('overlay mode: whiteouts and opaque dirs hide the lower layer through a real overlay mount', async (t) => {
    const base = await tmp.make('overlay');
    const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((d) => join(base, d));
    for (const d of [lower, upper, work, merged]) await mkdir(d);
    await apply(
      [
        { type: 'file', path: 'gone', content: 'x' },
        { type: 'dir', path: 'o' },
        { type: 'file', path: 'o/lower', content: 'x' },
      ],
      lower,
      'overlay',
    );
    await apply(
      [
        { type: 'file', path: 'o/mine', content: 'mine' },
        { type: 'opaque', path: 'o' },
        { type: 'whiteout', path: 'gone' },
      ],
      upper,
      'overlay',
    );
    const wh = await lstat(join(upper, 'gone'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'whiteout is char 0/0');
    assert.equal(existsSync(join(upper, '.wh.gone')), false, 'whiteout file not extracted');
    try {
      execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${upper}:${lower},index=off`, merged]);
    } catch (err) {
      t.skip(`overlay mount failed: ${(err as Error).message}`);
      return;
    }
    try {
      assert.equal(existsSync(join(merged, 'gone')), false, 'whiteout hides the lower file');
      assert.deepEqual(await readdir(join(merged, 'o')), ['mine'], 'opaque dir shows only this layer');
    } finally {
      execFileSync('umount', [merged]);
    }
  });
});
