/** What the zfs backend adds to the shared rules: datasets, clones of the parent's @committed snapshot, destroy on remove. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Register } from '../../../src/snapshotter/testsuite/suite.js';

const run = promisify(execFile);

async function datasetAt(path: string): Promise<{ name: string; origin: string } | undefined> {
  const { stdout } = await run('zfs', ['list', '-H', '-o', 'name,mountpoint,origin', '-t', 'filesystem']);
  const line = stdout.split('\n').find((l) => l.split('\t')[1] === path);
  return line ? { name: line.split('\t')[0]!, origin: line.split('\t')[2]! } : undefined;
}

export function registerZfsSpecifics(test: Register): void {
  test('each snapshot is a dataset; prepare on a parent clones its @committed snapshot; remove destroys the dataset', async (h) => {
    await h.sn.prepare('a');
    const aTree = await realpath(await h.sn.applyDir('a'));
    const a = await datasetAt(aTree);
    assert.ok(a, `${aTree} is a dataset's mountpoint`);
    assert.equal(a.origin, '-');
    await writeFile(join(aTree, 'f'), 'a');
    await h.sn.commit('A', 'a');
    const snapshots = (await run('zfs', ['list', '-H', '-o', 'name', '-t', 'snapshot'])).stdout;
    assert.match(snapshots, new RegExp(`^${a.name}@committed$`, 'm'));

    await h.sn.prepare('b', 'A');
    const bTree = await realpath(await h.sn.applyDir('b'));
    const b = await datasetAt(bTree);
    assert.equal(b?.origin, `${a.name}@committed`, 'a clone of the parent, no copy');
    await h.sn.remove('b');
    assert.equal(await datasetAt(bTree), undefined, 'destroyed');
    await h.sn.remove('A');
    assert.equal(await datasetAt(aTree), undefined);
    assert.deepEqual(await readdir(join(h.root, 'snapshots')), []);
    assert.deepEqual(await readdir(join(h.root, 'trees')), []);
  });
}
