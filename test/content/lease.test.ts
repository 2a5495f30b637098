import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, writeFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { OciStore } from '../../src/content/store.js';
import { collectGarbage } from '../../src/content/gc.js';
import { Lease, leasedDigests, LEASES_DIR } from '../../src/content/lease.js';
import { newOwner } from '../../src/content/lock.js';
import { TempDirs } from '../helpers/tmp.js';

describe('leases', () => {
  const dirs = new TempDirs();
  after(() => dirs.cleanup());

  async function oldBlob(store: OciStore, text: string) {
    const info = await store.put(Buffer.from(text));
    const past = new Date(Date.now() - 3600_000);
    await utimes(store.blobPath(info.digest), past, past);
    return info;
  }

  it('GC keeps blobs held by a live lease and frees them once it is released', async () => {
    const store = await OciStore.open(await dirs.make('store'));
    const held = await oldBlob(store, 'held by an in-flight pull');
    const loose = await oldBlob(store, 'nobody needs this');
    const lease = await Lease.create(store.root);
    await lease.add(held.digest);
    const first = await collectGarbage(store);
    assert.deepEqual(first.removed.map((b) => b.digest), [loose.digest]);
    assert.equal(await store.has(held.digest), true);
    await lease.release();
    const second = await collectGarbage(store);
    assert.deepEqual(second.removed.map((b) => b.digest), [held.digest]);
  });

  it('a lease whose process is gone holds nothing and is removed', async () => {
    const root = await dirs.make('store');
    const store = await OciStore.open(root);
    const blob = await oldBlob(store, 'leased by a dead process');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const owner = { ...newOwner(), pid: Number(dead.stdout.toString()) };
    const leasesDir = join(root, LEASES_DIR);
    await mkdir(leasesDir, { recursive: true });
    await writeFile(join(leasesDir, 'dead'), `${JSON.stringify(owner)}\n${blob.digest}\n`);
    assert.equal((await leasedDigests(root, true)).has(blob.digest), false);
    assert.deepEqual(await readdir(leasesDir).then((n) => n.filter((x) => x === 'dead')), ['dead'], 'dry run leaves it');
    const result = await collectGarbage(store);
    assert.deepEqual(result.removed.map((b) => b.digest), [blob.digest]);
    assert.equal((await readdir(leasesDir)).includes('dead'), false);
  });
});
