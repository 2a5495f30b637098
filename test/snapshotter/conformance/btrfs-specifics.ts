/** What the btrfs backend adds to the shared rules: subvolumes, snapshots in constant space, read-only committed layers. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isStratumError } from '../../../src/errors.js';
import { isSubvolume } from '../../../src/snapshotter/btrfs/btrfs.js';
import { openSnapshotter } from '../../../src/snapshotter/index.js';
import { MetadataStore } from '../../../src/snapshotter/metadata.js';
import { tempDir } from '../../helpers/tmp.js';
import type { Register } from '../../../src/snapshotter/testsuite/suite.js';

const run = promisify(execFile);

async function used(dir: string): Promise<number> {
  await run('sync', ['-f', dir]);
  await run('btrfs', ['filesystem', 'sync', dir]);
  return Number((await run('df', ['--output=used', '-B1', dir])).stdout.split('\n')[1]);
}

export function registerBtrfsSpecifics(test: Register): void {
  test('each snapshot is a subvolume; prepare on a 64 MiB parent is a snapshot (no data copied), committed layers and views are read-only, remove deletes the subvolume', async (h) => {
    const data = Buffer.alloc(64 << 20);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    await h.sn.prepare('a');
    const aDir = await h.sn.applyDir('a');
    assert.ok(await isSubvolume(aDir), `${aDir} is a subvolume`);
    await writeFile(join(aDir, 'big'), data);
    await h.sn.commit('A', 'a');

    const ids = async () => (await new MetadataStore(h.root).read()).snapshots;
    const committedDir = join(h.root, 'snapshots', String((await ids())['A']!.id));
    await assert.rejects(writeFile(join(committedDir, 'more'), 'x'), { code: 'EROFS' });

    const before = await used(h.root);
    await h.sn.prepare('b', 'A');
    const bDir = await h.sn.applyDir('b');
    const grown = (await used(h.root)) - before;
    assert.ok(grown < 4 << 20, `prepare grew the filesystem by ${grown} bytes for a 64 MiB parent: copied, not snapshotted`);
    assert.ok(await isSubvolume(bDir));
    await writeFile(join(bDir, 'mine'), 'b');

    await h.sn.view('v', 'A');
    const vDir = join(h.root, 'snapshots', String((await ids())['v']!.id));
    await assert.rejects(writeFile(join(vDir, 'x'), 'x'), { code: 'EROFS' });

    const subvolumes = async () => (await run('btrfs', ['subvolume', 'list', '-o', h.root])).stdout;
    const bId = (await ids())['b']!.id;
    await h.sn.remove('b');
    await h.sn.remove('v');
    await h.sn.cleanup();
    assert.ok(!(await readdir(join(h.root, 'snapshots'))).includes(String(bId)));
    assert.doesNotMatch(await subvolumes(), new RegExp(`snapshots/${bId}$|removal/`, 'm'));
    await h.sn.remove('A');
    assert.deepEqual(await readdir(join(h.root, 'snapshots')), []);
  });

  test('a root that is not on btrfs is refused with a clear error', async () => {
    const dir = await tempDir('btrfs-not');
    try {
      await assert.rejects(openSnapshotter('btrfs', dir), (err: Error) => {
        assert.ok(isStratumError(err, 'ERR_FAILED_PRECONDITION'), err.message);
        assert.match(err.message, new RegExp(`${dir} is not on a btrfs filesystem \\(statfs type 0x[0-9a-f]+\\)`));
        return true;
      });
    } finally {
      await run('rm', ['-rf', dir]);
    }
  });
}
