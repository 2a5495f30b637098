/** What the erofs backend adds to the shared rules: a committed layer is one EROFS image (fsck-clean), mounted once and shared. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { mountAll, unmountAll, unescapeMountinfo } from '../../../src/snapshotter/mount.js';
import type { Register } from '../../../src/snapshotter/testsuite/suite.js';
import type { ErofsSnapshotter } from '../../../src/snapshotter/erofs/erofs.js';

const run = promisify(execFile);

async function mountedTypes(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const fields = line.split(' ');
    if (fields[4] !== undefined && unescapeMountinfo(fields[4]) === dir) out.push(fields[fields.indexOf('-') + 1]!);
  }
  return out;
}

export function registerErofsSpecifics(test: Register): void {
  test('commit converts the written upper into layer.erofs (fsck.erofs clean); fs/ is emptied and the image is mounted there once, shared', async (h) => {
    const sn = h.sn as ErofsSnapshotter;
    const target = join(h.root, 'mnt-a');
    await mkdir(target);
    await mountAll(await sn.prepare('a'), target);
    await mkdir(join(target, 'dir'));
    await writeFile(join(target, 'dir', 'f'), 'one');
    await unmountAll(target);
    await sn.commit('A', 'a');
    const data = await sn.driverData('A');
    await run('fsck.erofs', [data.LayerImage!]);
    assert.deepEqual(await readdir(data.UpperDir!), []);

    const t1 = join(h.root, 'mnt-b');
    const t2 = join(h.root, 'mnt-c');
    await mkdir(t1);
    await mkdir(t2);
    await mountAll(await sn.prepare('b', 'A'), t1);
    await mountAll(await sn.view('c', 'A'), t2);
    try {
      assert.equal(await readFile(join(t1, 'dir', 'f'), 'utf8'), 'one');
      assert.equal(await readFile(join(t2, 'dir', 'f'), 'utf8'), 'one');
      assert.deepEqual(await mountedTypes(data.UpperDir!), ['erofs'], 'one erofs mount of the layer, shared by the union and the view');
      assert.deepEqual(await mountedTypes(t2), ['erofs'], 'a view of one parent is a read-only bind of its mounted image');
      // cleanup takes the shared layer mount down; the union and the view on it keep working, and the next prepare mounts it again.
      await sn.cleanup();
      assert.deepEqual(await mountedTypes(data.UpperDir!), []);
      assert.equal(await readFile(join(t1, 'dir', 'f'), 'utf8'), 'one');
      assert.equal(await readFile(join(t2, 'dir', 'f'), 'utf8'), 'one');
      await sn.mounts('b');
      assert.deepEqual(await mountedTypes(data.UpperDir!), ['erofs']);
    } finally {
      await unmountAll(t1);
      await unmountAll(t2);
    }
    assert.deepEqual(await sn.verify(), []);
    const snapshotDirs = await readdir(join(h.root, 'snapshots'));
    const withImage = [];
    for (const id of snapshotDirs) if ((await readdir(join(h.root, 'snapshots', id))).includes('layer.erofs')) withImage.push(id);
    assert.equal(snapshotDirs.length, 3);
    assert.equal(withImage.length, 1, 'only the committed snapshot has an image: the active and the view get none');
    const usage = await sn.usage('A');
    assert.ok(usage.size >= 4096 * 2 && usage.inodes === 3, JSON.stringify(usage));
    await sn.remove('b');
    await sn.remove('c');
    await sn.remove('A');
    assert.deepEqual(await mountedTypes(data.UpperDir!), [], 'remove unmounts the layer');
  });

  test('verify names a committed snapshot whose layer image is missing', async (h) => {
    const sn = h.sn as ErofsSnapshotter;
    await sn.prepare('a');
    await sn.commit('A', 'a');
    const data = await sn.driverData('A');
    assert.deepEqual(await sn.verify(), []);
    await rm(data.LayerImage!);
    const problems = await sn.verify();
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.kind, 'snapshot-data');
    assert.match(problems[0]!.message, /layer image .*layer\.erofs is missing/);
  });
}
