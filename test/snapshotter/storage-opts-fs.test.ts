/**
 * Storage options applied to real filesystems: overlay mount options through the kernel, btrfs
 * compression and qgroup limits on a loop btrfs, zfs properties on a zfs-fuse pool, native's
 * reflinks. A missing part (not root, no btrfs-progs, no zfs-fuse) skips loudly with the reason.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { StorageOptionError } from '../../src/errors.js';
import { setDatasetProperties } from '../../src/snapshotter/zfs/zfs.js';
import { BtrfsSnapshotter, NativeSnapshotter, OverlaySnapshotter, ZfsSnapshotter, type OverlayOptions } from '../../src/snapshotter/backends.js';
import { mountAll, unmountAll } from '../../src/snapshotter/mount.js';
import { temporaryLabels } from '../../src/snapshotter/temporaries.js';
import { loadNative } from '../../src/sys/native.js';
import { deleteSubvolumesUnder, mountLoopBtrfs, type LoopBtrfs } from '../helpers/btrfs.js';
import { TempDirs } from '../helpers/tmp.js';
import { startFilePool, type FilePool } from '../helpers/zfs.js';

const run = promisify(execFile);
const tmp = new TempDirs();
after(() => tmp.cleanup());

const MiB = 1 << 20;
const rootOnly = process.getuid?.() === 0 ? undefined : 'needs root: mounts';

/** A committed snapshot `name` holding `file` of `size` random bytes, then an active `key` on it. */
async function layerWithFile(s: { prepare: OverlaySnapshotter['prepare']; applyDir(k: string): Promise<string>; commit(n: string, k: string): Promise<void> }, name: string, key: string, size: number, labels?: Record<string, string>) {
  await s.prepare(`${name}-a`);
  const dir = await s.applyDir(`${name}-a`);
  await writeFile(join(dir, 'file'), (await import('node:crypto')).randomBytes(size));
  await s.commit(name, `${name}-a`);
  return s.prepare(key, name, labels ? { labels } : {});
}

describe('overlay storage options', () => {
  test('metacopy=on: a chmod of a lower file copies up its metadata only, no data (control: without it, the data)', async (t) => {
    if (rootOnly) return t.skip(`LOUD SKIP: ${rootOnly}`);
    const upperBlocks = async (options: OverlayOptions) => {
      const root = await tmp.make('ov-metacopy');
      const s = await OverlaySnapshotter.open(join(root, 'sn'), options);
      const mounts = await layerWithFile(s, 'base', 'work', 2 * MiB);
      const target = join(root, 'mnt');
      await mkdir(target);
      await mountAll(mounts, target);
      try {
        await chmod(join(target, 'file'), 0o600);
      } finally {
        await unmountAll(target);
      }
      const upper = join(mounts[0]!.options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length), 'file');
      const st = await stat(upper);
      assert.equal(st.size, 2 * MiB, 'the copied-up inode keeps its size');
      assert.equal(st.mode & 0o777, 0o600);
      const xattrs = Object.keys(loadNative().lgetxattrs(upper));
      return { blocks: st.blocks, metacopy: xattrs.includes('trusted.overlay.metacopy') };
    };
    // A block or two may hold the inode's xattrs (ext4 counts an xattr block in st_blocks); the 2 MiB of data are not there.
    const withMetacopy = await upperBlocks({ metacopy: true, redirectDir: 'on' });
    assert.equal(withMetacopy.metacopy, true);
    assert.ok(withMetacopy.blocks * 512 <= 8192, `metacopy: only metadata copied up (${withMetacopy.blocks} blocks)`);
    const without = await upperBlocks({ metacopy: false });
    assert.ok(without.blocks >= (2 * MiB) / 512, `without metacopy the data is copied up (${without.blocks} blocks)`);
    assert.equal(without.metacopy, false);
  });

  test('options the kernel refuses are refused at open, naming them', async (t) => {
    if (rootOnly) return t.skip(`LOUD SKIP: ${rootOnly}`);
    const root = await tmp.make('ov-refused');
    // metacopy=on needs redirects: the kernel refuses it beside redirect_dir=off.
    await assert.rejects(OverlaySnapshotter.open(join(root, 'sn'), { metacopy: true, redirectDir: 'off' }), (err: unknown) => {
      assert.ok(err instanceof StorageOptionError, String(err));
      assert.match(err.message, /redirect_dir=off,metacopy=on.*refused/);
      return true;
    });
  });
});

describe('btrfs storage options (loop btrfs)', () => {
  let fs: LoopBtrfs | string = 'not set up';
  before(async () => {
    fs = await mountLoopBtrfs(512);
  });
  after(async () => {
    if (typeof fs !== 'string') {
      await deleteSubvolumesUnder(fs.mnt).catch(() => {});
      await fs.unmount();
    }
  });

  test('btrfs.compression is the compression property of every subvolume, children included (btrfs property get)', async (t) => {
    if (typeof fs === 'string') return t.skip(`LOUD SKIP: btrfs: ${fs}`);
    await mkdir(join(fs.mnt, 'compress'));
    const s = await BtrfsSnapshotter.open(join(fs.mnt, 'compress'), { compression: 'zstd:1' });
    const mounts = await layerWithFile(s, 'base', 'child', 1 * MiB);
    const property = async (dir: string) => (await run('btrfs', ['property', 'get', dir, 'compression'])).stdout.trim();
    assert.equal(await property((await s.driverData('base')).Dir!), 'compression=zstd:1');
    assert.equal(await property(mounts[0]!.source), 'compression=zstd:1');
  });

  test('btrfs.size: a writable snapshot is limited by a qgroup; writing past it fails with EDQUOT; unpack temporaries are not limited', async (t) => {
    if (typeof fs === 'string') return t.skip(`LOUD SKIP: btrfs: ${fs}`);
    await mkdir(join(fs.mnt, 'quota'));
    const s = await BtrfsSnapshotter.open(join(fs.mnt, 'quota'), { size: 8 * MiB });
    const [m] = await layerWithFile(s, 'base', 'rw', 1 * MiB);
    const maxReferenced = async (dir: string) => {
      const id = /Subvolume ID:\s+(\d+)/.exec((await run('btrfs', ['subvolume', 'show', dir])).stdout)![1];
      const row = (await run('btrfs', ['qgroup', 'show', '-re', '--raw', dir])).stdout.split('\n').find((l) => l.startsWith(`0/${id} `));
      return row!.trim().split(/\s+/)[3];
    };
    assert.equal(await maxReferenced(m!.source), String(8 * MiB));
    assert.equal(await maxReferenced((await s.driverData('base')).Dir!), 'none', 'a committed layer has no limit');
    await writeFile(join(m!.source, 'small'), Buffer.alloc(2 * MiB, 1));
    await assert.rejects(writeFile(join(m!.source, 'big'), Buffer.alloc(16 * MiB, 2)), // libuv has no name for EDQUOT (122 on Linux).
      (err: NodeJS.ErrnoException) => err.code === 'EDQUOT' || err.errno === -122);
    const [tmpMount] = await s.prepare('extract-like', 'base', { labels: temporaryLabels() });
    await writeFile(join(tmpMount!.source, 'big'), Buffer.alloc(16 * MiB, 3));
  });

  test('native.reflink=true shares the parent’s extents (FICLONE), false copies bytes (filefrag)', async (t) => {
    if (typeof fs === 'string') return t.skip(`LOUD SKIP: btrfs: ${fs}`);
    const mnt = fs.mnt;
    const shared = async (reflink: boolean) => {
      const s = await NativeSnapshotter.open(join(mnt, `native-${reflink}`), { reflink });
      const [m] = await layerWithFile(s, 'base', 'child', 1 * MiB);
      await run('sync');
      return /\bshared\b/.test((await run('filefrag', ['-v', join(m!.source, 'file')])).stdout);
    };
    assert.equal(await shared(true), true);
    assert.equal(await shared(false), false);
  });

  test('native.reflink=true where the filesystem cannot reflink is refused at open', async (t) => {
    const why = (await run('findmnt', ['-n', '-o', 'FSTYPE', '-T', (await tmp.make('probe'))])).stdout.trim();
    if (why === 'btrfs' || why === 'xfs') return t.skip(`LOUD SKIP: the temp directory is on ${why}, which reflinks`);
    const root = await tmp.make('native-noreflink');
    await assert.rejects(NativeSnapshotter.open(join(root, 'sn'), { reflink: true }), (err: unknown) => err instanceof StorageOptionError && err.option === 'native.reflink=true' && /cannot reflink/.test(err.message));
  });
});

describe('zfs storage options (zfs-fuse)', () => {
  test('the properties are set on a dataset where they differ; one zfs-fuse refuses (lz4) is refused naming the option', { timeout: 120_000 }, async (t) => {
    if (process.getuid?.() !== 0) return t.skip('LOUD SKIP: zfs: needs root');
    if (!(await run('timeout', ['20', 'zpool', 'list']).then(() => true, () => false))) return t.skip('LOUD SKIP: zfs: no zfs-fuse daemon answers');
    // A pool that is never mounted: only properties are asked of it.
    const file = join(await tmp.make('zfs-props'), 'pool.img');
    const name = `stratumprops${process.pid}`;
    await run('truncate', ['-s', '128M', file]);
    await run('timeout', ['30', 'zpool', 'create', '-m', 'none', name, file]);
    try {
      await setDatasetProperties(name, { compression: 'gzip-9', recordsize: 32 * 1024 });
      const props = (await run('zfs', ['get', '-H', '-p', '-o', 'value', 'compression,recordsize', name])).stdout.trim().split('\n');
      assert.deepEqual(props, ['gzip-9', '32768']);
      await assert.rejects(setDatasetProperties(name, { compression: 'lz4' }), (err: unknown) => {
        assert.ok(err instanceof StorageOptionError, String(err));
        assert.equal(err.option, 'zfs.compression=lz4');
        assert.match(err.message, /zfs refused it on .*must be one of/);
        return true;
      });
    } finally {
      await run('timeout', ['30', 'zpool', 'destroy', '-f', name]).catch(() => {});
    }
  });

  let pool: FilePool | string = 'not set up';
  before(async () => {
    pool = await startFilePool(512);
  });
  after(async () => {
    if (typeof pool !== 'string') await pool.stop();
  });

  test('zfs.compression and zfs.recordsize are set on the parent dataset and every snapshot dataset inherits them (zfs get)', { timeout: 120_000 }, async (t) => {
    if (typeof pool === 'string') return t.skip(`LOUD SKIP: zfs: ${pool}`);
    // A zfs-fuse daemon that other runs share can be wedged: its mounts then hang every call.
    if (!(await run('timeout', ['10', 'stat', '-f', pool.mnt]).then(() => true, () => false))) return t.skip(`LOUD SKIP: zfs: the zfs-fuse mount ${pool.mnt} does not answer (daemon wedged)`);
    const root = join(pool.mnt, 'opts');
    await mkdir(root);
    await pool.datasetAt(root);
    const s = await ZfsSnapshotter.open(root, { compression: 'gzip', recordsize: 64 * 1024 });
    const [m] = await layerWithFile(s, 'base', 'child', 256 * 1024);
    const child = `${s.dataset}/${basename(m!.source)}`;
    const props = (await run('zfs', ['get', '-H', '-p', '-o', 'property,value', 'compression,recordsize', s.dataset, child])).stdout;
    assert.deepEqual(props.trim().split('\n'), ['compression\tgzip', 'recordsize\t65536', 'compression\tgzip', 'recordsize\t65536']);
    await assert.rejects(ZfsSnapshotter.open(root, { fsname: `${pool.pool}/elsewhere` }), (err: unknown) => err instanceof StorageOptionError && /not under/.test(err.message));
  });
});
