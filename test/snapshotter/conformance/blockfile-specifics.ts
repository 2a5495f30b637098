/** What the blockfile backend adds to the shared rules: one filesystem file per snapshot, loop-mounted while in use, copied (reflinked where the host can) by prepare. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { blockfileUnavailable } from '../../../src/snapshotter/blockfile/blockfile.js';
import { openSnapshotter } from '../../../src/snapshotter/index.js';
import { isMountPoint, unescapeMountinfo } from '../../../src/snapshotter/mount.js';
import { MetadataStore } from '../../../src/snapshotter/metadata.js';
import type { Register } from '../../../src/snapshotter/testsuite/suite.js';

const run = promisify(execFile);
const MiB = 1 << 20;

/** Options every blockfile test root is opened with: small files, so 130-layer chains stay cheap. */
export const TEST_STORAGE_OPTS = ['blockfile.size=128M'];

/** The filesystem type and source mounted exactly on `dir`, per /proc/self/mountinfo. */
async function mountedAt(dir: string): Promise<{ type: string; source: string } | undefined> {
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (fields[4] !== undefined && unescapeMountinfo(fields[4]) === dir) return { type: fields[dash + 1]!, source: fields[dash + 2]! };
  }
  return undefined;
}

async function mountedType(dir: string): Promise<string | undefined> {
  return (await mountedAt(dir))?.type;
}

/** Bytes of `file` whose extents are shared with another file (btrfs filesystem du's "Set shared"). */
async function btrfsSharedBytes(file: string): Promise<number> {
  await run('sync', ['-f', file]);
  const out = (await run('btrfs', ['filesystem', 'du', '-s', '--raw', file])).stdout.trim().split('\n');
  return Number(out[out.length - 1]!.trim().split(/\s+/)[2]);
}

/** `reflink`: the host filesystem shares blocks on FICLONE (btrfs), so a child's file must share its parent's. */
export function registerBlockfileSpecifics(reflink: boolean): (test: Register) => void {
  return (test) => {
    test(`each snapshot is one ext4 file, loop-mounted while active and unmounted by commit; a child's file ${reflink ? 'shares its parent\'s extents (reflink) until written' : 'is a sparse copy of its parent\'s'}`, async (h) => {
      await h.sn.prepare('a');
      const aDir = await h.sn.applyDir('a');
      const mounted = await mountedAt(aDir);
      assert.equal(mounted?.type, 'ext4', `${aDir} is a loop-mounted ext4`);
      const loop = /^\/dev\/(loop\d+)$/.exec(mounted!.source)?.[1];
      assert.ok(loop, `mounted from a loop device, not ${mounted!.source}`);
      assert.equal((await readFile(`/sys/block/${loop}/loop/dio`, 'utf8')).trim(), '1', 'the loop device uses direct I/O');
      assert.equal((await readFile(`/sys/block/${loop}/loop/autoclear`, 'utf8')).trim(), '1', 'the loop device goes away at unmount');
      await writeFile(join(aDir, 'big'), randomBytes(16 * MiB));
      await h.sn.commit('A', 'a');
      assert.equal(await isMountPoint(aDir), false, 'commit unmounts the filesystem');

      const ids = (await new MetadataStore(h.root).read()).snapshots;
      const aImage = join(h.root, 'snapshots', String(ids['A']!.id), 'image');
      assert.equal((await stat(aImage)).size, 128 * MiB, 'the file has the configured size');

      await h.sn.prepare('b', 'A');
      const bDir = await h.sn.applyDir('b');
      const bImage = join(bDir, '..', 'image');
      const bBlocks = (await stat(bImage)).blocks * 512;
      assert.ok(bBlocks < 64 * MiB, `the child's 128 MiB file takes ${bBlocks} bytes: sparse, not a full copy`);
      if (reflink) {
        const shared = await btrfsSharedBytes(bImage);
        assert.ok(shared >= 16 * MiB, `the child's file shares ${shared} bytes with its parent's (reflink), expected ≥ 16 MiB`);
        const filefrag = (await run('filefrag', ['-v', bImage])).stdout;
        assert.match(filefrag, /shared/, 'filefrag shows shared extents');
      } else {
        assert.ok(bBlocks >= 16 * MiB, `the child's file holds a copy of the parent's 16 MiB (${bBlocks} bytes)`);
      }
      assert.deepEqual(await readFile(join(bDir, 'big')), await readFile(join(await h.mount(await h.sn.view('va', 'A'), 'va'), 'big')), 'the child sees the parent\'s data');
      // Block-level copy-on-write: rewriting 1 MiB of the 16 MiB file un-shares about that much, not the whole file.
      const fh = await open(join(bDir, 'big'), 'r+');
      await fh.write(randomBytes(MiB), 0, MiB, 4 * MiB);
      await fh.close();
      await run('sync', ['-f', bDir]);
      if (reflink) {
        const shared = await btrfsSharedBytes(bImage);
        assert.ok(shared >= 12 * MiB, `after a 1 MiB write the child's file still shares ${shared} bytes`);
      }
    });

    test('blockfile.fs=xfs: each snapshot is an xfs file (no lost+found to hide), written, committed and seen through a view', async (h, t) => {
      const why = await blockfileUnavailable('xfs');
      if (why) {
        t.diagnostic(`SKIP xfs: ${why}`);
        return t.skip(why);
      }
      const sn = await openSnapshotter('blockfile', await h.mkScratch('xfs-root'), { storageOpts: ['blockfile.fs=xfs', 'blockfile.size=320M'] });
      try {
        await sn.prepare('a');
        const dir = await sn.applyDir('a');
        assert.equal(await mountedType(dir), 'xfs');
        assert.deepEqual(await readdir(dir), [], 'a new snapshot is empty');
        await writeFile(join(dir, 'f'), 'on xfs');
        await sn.commit('A', 'a');
        const [m] = await sn.view('v', 'A');
        assert.equal(await readFile(join(m!.source, 'f'), 'utf8'), 'on xfs');
        await sn.remove('v');
        await sn.remove('A');
      } finally {
        await sn.close();
      }
    });

    test('a view and a child of a snapshot committed while its caller still holds a bind mount with written data', async (h) => {
      const dir = await h.prepare('held');
      await writeFile(join(dir, 'f'), 'written before commit');
      await h.sn.commit('H', 'held'); // the harness's bind mount of 'held' stays mounted
      await h.withView('H', async (v) => assert.equal(await readFile(join(v, 'f'), 'utf8'), 'written before commit'));
      const child = await h.prepare('child', 'H');
      assert.equal(await readFile(join(child, 'f'), 'utf8'), 'written before commit');
      await h.unmountKey('held');
    });

    test('reopening the root mounts an active snapshot again when it was unmounted (a reboot), and keeps the recorded size', async (h) => {
      await h.sn.prepare('a');
      const dir = await h.sn.applyDir('a');
      await writeFile(join(dir, 'f'), 'kept');
      await run('sync', ['-f', dir]);
      await run('umount', [dir]);
      const again = await h.reopen();
      const mounts = await again.sn.mounts('a');
      assert.equal(await readFile(join(mounts[0]!.source, 'f'), 'utf8'), 'kept');
      await again.sn.close();
    });
  };
}
