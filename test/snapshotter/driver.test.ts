/**
 * Storage-driver selection as Docker's daemon does it, on real filesystems: tmpfs, a loop-mounted
 * btrfs, a mounted overlayfs, and a zfs-fuse pool when one can be started.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, test } from 'node:test';
import { backingFilesystem, checkStorageDriver, chooseStorageDriver, driverStatus, normalizeDriverName, supportsDType, isStratumError } from '../../src/index.js';
import { fuseOverlayfsMissing } from '../../src/snapshotter/fuse-overlayfs/fuse-overlayfs.js';
import { erofsUnavailable } from '../../src/snapshotter/erofs/erofs.js';
import { mountLoopBtrfs } from '../helpers/btrfs.js';
import { startFilePool } from '../helpers/zfs.js';
import { TempDirs } from '../helpers/tmp.js';

const run = promisify(execFile);
const dirs = new TempDirs();
after(() => dirs.cleanup());
const ROOT = process.getuid?.() === 0 ? undefined : 'needs root: mounts';

async function tmpfs(): Promise<{ dir: string; stop: () => Promise<void> }> {
  const dir = await dirs.make('driver-tmpfs');
  await run('mount', ['-t', 'tmpfs', 'tmpfs', dir]);
  return { dir, stop: () => run('umount', [dir]).then(() => {}) };
}

describe('driver names', () => {
  test('Docker names are aliases; unknown and unsupported names are refused with the choices', () => {
    assert.equal(normalizeDriverName('overlay2'), 'overlay');
    assert.equal(normalizeDriverName('vfs'), 'native');
    assert.equal(normalizeDriverName('BTRFS'), 'btrfs');
    for (const name of ['zfs', 'native', 'overlay', 'fuse-overlayfs', 'blockfile', 'erofs']) assert.equal(normalizeDriverName(name), name);
    assert.throws(() => normalizeDriverName('devicemapper'), (err: unknown) => isStratumError(err, 'ERR_INVALID_ARGUMENT') && /devicemapper is not supported by stratum; blockfile is its loop-lvm heir.*overlay2 and vfs/.test((err as Error).message));
    assert.throws(() => normalizeDriverName('overlay3'), /unknown storage driver "overlay3": use overlay, fuse-overlayfs, native, btrfs, zfs, blockfile/);
  });
});

describe('backing filesystem and choice', () => {
  test('tmpfs: extfs-like d_type, overlay after a real test mount; native and btrfs checked', async (t) => {
    if (ROOT) return t.skip(ROOT);
    const fs = await tmpfs();
    try {
      assert.equal(await backingFilesystem(fs.dir), 'tmpfs');
      assert.equal(await backingFilesystem(join(fs.dir, 'not', 'made', 'yet')), 'tmpfs', 'judged by the nearest existing parent');
      assert.equal(await supportsDType(fs.dir), true);
      const chosen = await chooseStorageDriver({ root: join(fs.dir, 'snapshots') });
      assert.equal(chosen.name, 'overlay');
      assert.match(chosen.reason, /backing tmpfs supports d_type and a test overlay of two lower layers mounted/);
      assert.equal((await chooseStorageDriver({ root: fs.dir, requested: 'vfs' })).name, 'native');
      await assert.rejects(checkStorageDriver('btrfs', fs.dir), /'btrfs' needs its snapshot root on a btrfs filesystem; .* is on tmpfs/);
      await assert.rejects(checkStorageDriver('zfs', fs.dir), (err: unknown) => isStratumError(err, 'ERR_DRIVER_UNSUPPORTED'));
      const status = Object.fromEntries(await driverStatus('overlay', fs.dir));
      assert.equal(status['Backing Filesystem'], 'tmpfs');
      assert.equal(status['Supports d_type'], 'true');
      assert.ok(['true', 'false'].includes(status.userxattr!));
      assert.ok(['true', 'false'].includes(status['using metacopy']!));
      // commit diffs from the upper directory unless overlay may keep changes elsewhere, as Docker's Native Overlay Diff says.
      assert.equal(status['Native Overlay Diff'], String(status['using metacopy'] === 'false' && !/\bon\b/.test(status.redirect_dir!)));
      const naive = Object.fromEntries(await driverStatus('overlay', fs.dir, ['overlay.redirect_dir=on']));
      assert.equal(naive['Native Overlay Diff'], 'false');
      assert.equal(naive.redirect_dir, 'on');
      const fuseMissing = await fuseOverlayfsMissing();
      if (fuseMissing) t.diagnostic(`LOUD SKIP of the fuse-overlayfs checks: ${fuseMissing}`);
      else {
        assert.match(await checkStorageDriver('fuse-overlayfs', fs.dir), /a test fuse-overlayfs of two lower layers mounted/);
        const fuse = Object.fromEntries(await driverStatus('fuse-overlayfs', fs.dir));
        assert.equal(fuse['Backing Filesystem'], 'tmpfs');
        assert.match(fuse['Mount Program']!, /^fuse-overlayfs \d+\.\d+/);
      }
      const noErofs = await erofsUnavailable();
      if (noErofs) t.diagnostic(`LOUD SKIP of the erofs checks: ${noErofs}`);
      else {
        assert.match(await checkStorageDriver('erofs', fs.dir), /the kernel mounts EROFS images \((file-backed|loop)\) and overlay stacks them over the backing tmpfs/);
        const erofs = Object.fromEntries(await driverStatus('erofs', fs.dir));
        assert.equal(erofs['Backing Filesystem'], 'tmpfs');
        assert.match(erofs['Mount Mode']!, /^(file-backed|loop), read-only, one mount per layer/);
        assert.equal(erofs.Layers, '0');
      }
    } finally {
      await fs.stop();
    }
  });

  test('ext4 made without the filetype feature: no d_type, overlay refused with Docker’s hint, native chosen', async (t) => {
    if (ROOT) return t.skip(ROOT);
    const dir = await dirs.make('driver-ext4');
    const image = join(dir, 'fs.img');
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    try {
      await run('truncate', ['-s', '64M', image]);
      await run('mkfs.ext4', ['-q', '-F', '-O', '^filetype', image]);
      await run('mount', ['-o', 'loop', image, mnt]);
    } catch (err) {
      return t.skip(`LOUD SKIP: cannot make and loop-mount an ext4 here: ${(err as Error).message.trim()}`);
    }
    try {
      assert.equal(await backingFilesystem(mnt), 'extfs');
      assert.equal(await supportsDType(mnt), false);
      await assert.rejects(checkStorageDriver('overlay', join(mnt, 'snapshots')), /overlay: the backing extfs filesystem is formatted without d_type support, which leads to incorrect behavior\. Enable d_type with tune2fs -O filetype\./);
      const chosen = await chooseStorageDriver({ root: join(mnt, 'snapshots') });
      assert.equal(chosen.name, 'native');
      assert.match(chosen.reason, /without d_type support/);
    } finally {
      await run('umount', [mnt]);
    }
  });

  test('btrfs: picked on btrfs without asking; its usage in the status', async (t) => {
    if (ROOT) return t.skip(ROOT);
    const fs = await mountLoopBtrfs(256);
    if (typeof fs === 'string') return t.skip(fs);
    try {
      assert.equal(await backingFilesystem(fs.mnt), 'btrfs');
      const chosen = await chooseStorageDriver({ root: join(fs.mnt, 'store', 'snapshots') });
      assert.deepEqual(chosen, { name: 'btrfs', reason: 'the store is on btrfs' });
      const status = Object.fromEntries(await driverStatus('btrfs', fs.mnt));
      assert.equal(status['Backing Filesystem'], 'btrfs');
      assert.ok(Number(status['Device Size']) >= 200 * 1024 * 1024, JSON.stringify(status));
      assert.ok(Number(status.Used) > 0);
      assert.match(status['Build Version']!, /btrfs-progs/);
    } finally {
      await fs.unmount();
    }
  });

  test('overlayfs: overlay is refused with Docker’s message; with no request fuse-overlayfs is chosen where it mounts (Docker’s priority), else native, and says why', async (t) => {
    if (ROOT) return t.skip(ROOT);
    const base = await dirs.make('driver-ovl');
    const [lower, upper, work, merged] = ['l', 'u', 'w', 'm'].map((d) => join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, merged]) await mkdir(d);
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
    try {
      assert.equal(await backingFilesystem(merged), 'overlayfs');
      await assert.rejects(chooseStorageDriver({ root: merged, requested: 'overlay2' }), (err: unknown) => isStratumError(err, 'ERR_DRIVER_UNSUPPORTED') && /^'overlay' is not supported over overlayfs/.test((err as Error).message));
      const chosen = await chooseStorageDriver({ root: join(merged, 'store') });
      const fuseMissing = await fuseOverlayfsMissing();
      if (fuseMissing) t.diagnostic(`LOUD: fuse-overlayfs cannot be chosen here: ${fuseMissing}`);
      assert.equal(chosen.name, fuseMissing ? 'native' : 'fuse-overlayfs');
      assert.match(chosen.reason, fuseMissing ? /native, because 'overlay' is not supported over overlayfs/ : /test fuse-overlayfs of two lower layers mounted, because 'overlay' is not supported over overlayfs/);
    } finally {
      await run('umount', [merged]);
    }
  });

  test('zfs: a store inside a ZFS dataset picks zfs; the status names pool, dataset and space', { timeout: 180_000 }, async (t) => {
    if (ROOT) return t.skip(ROOT);
    const pool = await startFilePool(256);
    if (typeof pool === 'string') return t.skip(`zfs-fuse: ${pool}`);
    try {
      const dir = join(pool.mnt, 'stratum');
      await mkdir(dir);
      const dataset = await pool.datasetAt(dir);
      assert.equal(await backingFilesystem(dir), 'zfs');
      const chosen = await chooseStorageDriver({ root: join(dir, 'snapshots') });
      assert.equal(chosen.name, 'zfs');
      assert.match(chosen.reason, new RegExp(`ZFS dataset ${dataset}`));
      const status = Object.fromEntries(await driverStatus('zfs', dir));
      assert.equal(status.Zpool, pool.pool);
      assert.equal(status['Zpool Health'], 'ONLINE');
      assert.equal(status['Parent Dataset'], dataset);
      assert.ok(Number(status['Space Available']) > 0);
      await assert.rejects(checkStorageDriver('overlay', dir), /'overlay' is not supported over zfs/);
    } finally {
      await pool.stop();
    }
  });
});
