/**
 * Stores and snapshot roots placed inside immutable content are refused (UnsafeLocationError,
 * naming the path and why): under another store's blobs/, ingest/ or snapshots/, inside a
 * snapshot's data, and on a mounted snapshot (overlay or bind), which realpath alone cannot see.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isStratumError } from '../../src/errors.js';
import { OciStore } from '../../src/content/store.js';
import { mountAll, openSnapshotter, unmountAll } from '../../src/snapshotter/index.js';
import { TempDirs } from '../helpers/tmp.js';

const dirs = new TempDirs();
after(() => dirs.cleanup());

function refused(path: string, why: RegExp): (err: Error) => boolean {
  return (err: Error) => {
    assert.ok(isStratumError(err, 'ERR_UNSAFE_LOCATION'), `${err.name}: ${err.message}`);
    assert.ok(err.message.includes(path), err.message);
    assert.match(err.message, why);
    return true;
  };
}

describe('store and snapshot root locations', () => {
  test("a store under another store's blobs/, ingest/ or snapshots/ is refused; beside it is fine", async () => {
    const outer = await OciStore.open(join(await dirs.make('loc'), 'outer'));
    for (const area of ['blobs', 'blobs/sha256', 'ingest', 'snapshots/native']) {
      const inner = join(outer.root, area, 'inner');
      await assert.rejects(OciStore.open(inner), refused(inner, new RegExp(`${area.split('/')[0]}/ area of the store ${outer.root}`)));
      assert.equal(existsSync(join(inner, 'oci-layout')), false, 'nothing was written there');
    }
    await assert.rejects(OciStore.open(join(outer.root, 'blobs')), refused(join(outer.root, 'blobs'), /blobs\/ area/));
    await OciStore.open(join(outer.root, '..', 'sibling'));
  });

  test('the same path reached through a symlink is refused too (compared after realpath)', async () => {
    const base = await dirs.make('loc');
    const outer = await OciStore.open(join(base, 'outer'));
    await symlink(join(outer.root, 'blobs', 'sha256'), join(base, 'link'));
    const inner = join(base, 'link', 'inner');
    await assert.rejects(OciStore.open(inner), refused(inner, /blobs\/ area/));
  });

  test("a snapshot root inside the store's blobs/ is refused; under its snapshots/ is where it belongs", async () => {
    const store = await OciStore.open(join(await dirs.make('loc'), 'store'));
    const bad = join(store.root, 'blobs', 'sha256', 'snaps');
    await assert.rejects(openSnapshotter('native', bad), refused(bad, /blobs\/ area/));
    const good = await openSnapshotter('native', join(store.root, 'snapshots', 'native'));
    await good.close();
  });

  test("a store or snapshot root inside a snapshot's data is refused", async () => {
    const base = await dirs.make('loc');
    const snapshotter = await openSnapshotter('native', join(base, 'snaps'));
    try {
      await snapshotter.prepare('active');
      const data = await snapshotter.applyDir('active');
      await assert.rejects(OciStore.open(join(data, 'var', 'store')), refused(join(data, 'var', 'store'), /snapshot data of the snapshotter root/));
      await assert.rejects(openSnapshotter('native', join(data, 'snaps')), refused(join(data, 'snaps'), /snapshot data/));
    } finally {
      await snapshotter.close();
    }
  });

  const notRoot = process.getuid?.() !== 0 ? 'LOUD SKIP: needs root to mount snapshots' : undefined;
  for (const backend of ['overlay', 'native'] as const) {
    test(`a store on a mounted ${backend} snapshot (mounted outside the snapshot root) is refused`, { skip: notRoot }, async () => {
      const base = await dirs.make('loc');
      const snapshotter = await openSnapshotter(backend, join(base, 'snaps'));
      const target = join(base, 'mnt');
      await mkdir(target);
      try {
        await snapshotter.prepare('lower-active');
        await mkdir(join(await snapshotter.applyDir('lower-active'), 'var'));
        await snapshotter.commit('lower', 'lower-active');
        // With a parent, overlay mounts an overlay (upper + lower); native a bind of a full copy.
        await mountAll(await snapshotter.prepare('work', 'lower'), target);
        const inside = join(target, 'var', 'store');
        await assert.rejects(OciStore.open(inside), refused(inside, /snapshot data of the snapshotter root .*on a mount of/));
        await assert.rejects(openSnapshotter('native', join(target, 'snaps')), refused(join(target, 'snaps'), /snapshot data/));
      } finally {
        await unmountAll(target, true);
        await snapshotter.close();
      }
    });
  }
});
