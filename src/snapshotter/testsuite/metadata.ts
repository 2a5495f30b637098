/** The metadata rules of snapshotter-conformance.md: every misuse with its exact error, and the label/walk/update semantics. */
import assert from 'node:assert/strict';
import { lstat, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../../errors.js';
import { expectError, expectRefusedTwice, sleep, type Harness } from './harness.js';
import type { Register } from './suite.js';

const EXISTS = [AlreadyExistsError, 'ERR_ALREADY_EXISTS'] as const;
const NOT_FOUND = [NotFoundError, 'ERR_NOT_FOUND'] as const;
const INVALID = [InvalidArgumentError, 'ERR_INVALID_ARGUMENT'] as const;
const PRECONDITION = [FailedPreconditionError, 'ERR_FAILED_PRECONDITION'] as const;

/** base (committed), act (active on base), vw (view on base), rootAct (active, no parent). */
async function population(h: Harness): Promise<void> {
  await h.layer('base', undefined, async (d) => writeFile(join(d, 'f'), 'base'));
  await h.sn.prepare('act', 'base');
  await h.sn.view('vw', 'base');
  await h.sn.prepare('rootAct');
}

export function registerMetadataRules(test: Register): void {
  test('prepare/view: a key already used by an active, view or committed snapshot is AlreadyExists', async (h) => {
    await population(h);
    for (const key of ['act', 'vw', 'base']) {
      await expectRefusedTwice(h, () => h.sn.prepare(key, 'base'), ...EXISTS);
      await expectRefusedTwice(h, () => h.sn.prepare(key), ...EXISTS);
      await expectRefusedTwice(h, () => h.sn.view(key, 'base'), ...EXISTS);
    }
  });

  test('prepare/view: a parent that does not exist is NotFound', async (h) => {
    await population(h);
    await expectRefusedTwice(h, () => h.sn.prepare('new', 'missing'), ...NOT_FOUND);
    await expectRefusedTwice(h, () => h.sn.view('new', 'missing'), ...NOT_FOUND);
  });

  test('prepare/view: a parent that exists but is not committed is InvalidArgument', async (h) => {
    await population(h);
    for (const parent of ['act', 'vw', 'rootAct']) {
      await expectRefusedTwice(h, () => h.sn.prepare('new', parent), ...INVALID);
      await expectRefusedTwice(h, () => h.sn.view('new', parent), ...INVALID);
    }
  });

  test('commit: a view, or an already committed snapshot, is FailedPrecondition', async (h) => {
    await population(h);
    await expectRefusedTwice(h, () => h.sn.commit('fromView', 'vw'), ...PRECONDITION);
    await expectRefusedTwice(h, () => h.sn.commit('again', 'base'), ...PRECONDITION);
  });

  test('commit: a name already used (committed, active or view) is AlreadyExists', async (h) => {
    await population(h);
    for (const name of ['base', 'vw', 'rootAct']) await expectRefusedTwice(h, () => h.sn.commit(name, 'act'), ...EXISTS);
    assert.equal((await h.sn.stat('act')).kind, 'active', 'the refused commit left the active snapshot active');
  });

  test('commit: a missing key is NotFound', async (h) => {
    await population(h);
    await expectRefusedTwice(h, () => h.sn.commit('x', 'missing'), ...NOT_FOUND);
  });

  test('mounts: a committed snapshot is FailedPrecondition, a missing key NotFound; active and view give their mounts again', async (h) => {
    await population(h);
    await expectRefusedTwice(h, () => h.sn.mounts('base'), ...PRECONDITION);
    await expectRefusedTwice(h, () => h.sn.mounts('missing'), ...NOT_FOUND);
    const prepared = await h.sn.prepare('again', 'base');
    assert.deepEqual(await h.sn.mounts('again'), prepared);
    const viewed = await h.sn.view('again-view', 'base');
    assert.deepEqual(await h.sn.mounts('again-view'), viewed);
  });

  test('remove: a snapshot with children is FailedPrecondition "cannot remove snapshot with child", repeatable, nothing changed', async (h) => {
    await population(h); // base has an active and a view child
    await expectRefusedTwice(h, () => h.sn.remove('base'), ...PRECONDITION, /cannot remove snapshot with child/);
    await h.sn.remove('act');
    await expectRefusedTwice(h, () => h.sn.remove('base'), ...PRECONDITION, /cannot remove snapshot with child/);
    await h.sn.remove('vw');
    await h.layer('top', 'base', async (d) => writeFile(join(d, 'g'), 'top'));
    await expectRefusedTwice(h, () => h.sn.remove('base'), ...PRECONDITION, /cannot remove snapshot with child/);
    // The refused removals did not damage the parent's data.
    await h.withView('top', async (d) => {
      assert.equal(await readFile(join(d, 'f'), 'utf8'), 'base');
      assert.equal(await readFile(join(d, 'g'), 'utf8'), 'top');
    });
    await h.sn.remove('top');
    await h.sn.remove('base');
    await expectError(() => h.sn.stat('base'), ...NOT_FOUND);
  });

  test('remove: a missing key is NotFound', async (h) => {
    await population(h);
    await expectRefusedTwice(h, () => h.sn.remove('missing'), ...NOT_FOUND);
  });

  test('stat: a missing key is NotFound', async (h) => {
    await population(h);
    await expectRefusedTwice(h, () => h.sn.stat('missing'), ...NOT_FOUND);
  });

  test('update: any field other than labels / labels.<k> is InvalidArgument, nothing changed; a missing key is NotFound', async (h) => {
    await h.sn.prepare('a', undefined, { labels: { x: '1' } });
    const info = await h.sn.stat('a');
    for (const field of ['name', 'kind', 'parent', 'created', 'updated', 'label', 'labelsx']) {
      await expectRefusedTwice(h, () => h.sn.update({ ...info, labels: { y: '2' } }, field), ...INVALID);
    }
    await expectRefusedTwice(h, () => h.sn.update({ ...info, labels: { y: '2' } }, 'labels.y', 'kind'), ...INVALID);
    await expectRefusedTwice(h, () => h.sn.update({ name: 'missing', labels: { y: '2' } }), ...NOT_FOUND);
    assert.deepEqual((await h.sn.stat('a')).labels, { x: '1' });
  });

  test('commit keeps the internal id (no data copy), the active key is gone, labels given at commit replace', async (h) => {
    const dir = await h.prepare('work', undefined, { labels: { from: 'prepare', keep: 'no' } });
    await writeFile(join(dir, 'data'), 'payload');
    const where = await findFile(h.root, (await stat(join(dir, 'data'))).ino, 'payload');
    const dirsBefore = JSON.parse(await h.state()).dirs as string[];
    const dataFilesBefore = h.blockData ? await filesOnDevice(join(h.root, 'snapshots')) : undefined;
    await h.commit('done', 'work', { labels: { from: 'commit' } });
    await expectError(() => h.sn.stat('work'), ...NOT_FOUND);
    const info = await h.sn.stat('done');
    assert.equal(info.kind, 'committed');
    assert.equal(info.name, 'done');
    assert.deepEqual(info.labels, { from: 'commit' }, 'labels at commit replace those of prepare');
    assert.ok(where, 'the written file is stored under the snapshotter root');
    if (h.convertsOnCommit) {
      // checked through a view below, once the directories are compared
    } else if (dataFilesBefore !== undefined) {
      // The written file is inside the snapshot's filesystem file, which is not mounted once committed.
      const dataFilesAfter = await filesOnDevice(join(h.root, 'snapshots'));
      for (const [path, ino] of dataFilesBefore) assert.equal(dataFilesAfter.get(path), ino, `the committed data file ${path} is the same file at the same place (no copy)`);
    } else {
      const after = await findFile(h.root, (await stat(where)).ino, 'payload');
      assert.equal(after, where, 'the committed data is the same file at the same place (no copy)');
    }
    assert.deepEqual(JSON.parse(await h.state()).dirs, dirsBefore, 'commit created or removed no directory');
    if (h.convertsOnCommit) assert.equal(await h.withView('done', (view) => readFile(join(view, 'data'), 'utf8')), 'payload', 'the committed snapshot holds the data');
    await h.sn.prepare('work', 'done'); // the active key can be used again
    await h.layer('bare', undefined, async () => {}, undefined);
    assert.deepEqual((await h.sn.stat('bare')).labels, {}, 'no labels at commit: none');
  });

  test('update: no fieldpaths replaces all labels; labels.<k> sets or deletes; labels replaces; created fixed, updated moves forward', async (h) => {
    await h.sn.prepare('u', undefined, { labels: { a: '1', b: '2', c: '3' } });
    const first = await h.sn.stat('u');
    assert.ok(first.updated.getTime() >= first.created.getTime());
    await sleep(15);
    let info = await h.sn.update({ name: 'u', labels: { d: '4' } });
    assert.deepEqual(info.labels, { d: '4' }, 'no fieldpaths: all labels replaced');
    assert.deepEqual((await h.sn.stat('u')).labels, { d: '4' });
    assert.equal(info.created.getTime(), first.created.getTime(), 'created never changes');
    assert.ok(info.updated.getTime() > first.updated.getTime(), 'updated moves forward');
    const second = info.updated.getTime();

    await h.sn.update({ name: 'u', labels: { a: 'x', d: '5' } }, 'labels');
    assert.deepEqual((await h.sn.stat('u')).labels, { a: 'x', d: '5' }, '"labels": replaced');

    await sleep(15);
    info = await h.sn.update({ name: 'u', labels: { a: 'A', e: 'E', zz: 'ignored' } }, 'labels.a', 'labels.d', 'labels.e');
    assert.deepEqual(info.labels, { a: 'A', e: 'E' }, 'labels.a set, labels.d named but absent → deleted, zz not named → ignored');
    assert.deepEqual((await h.sn.stat('u')).labels, { a: 'A', e: 'E' });
    assert.ok(info.updated.getTime() > second, 'updated moves forward again');
    assert.equal((await h.sn.stat('u')).created.getTime(), first.created.getTime());

    // Labels of a committed snapshot can be updated too.
    await h.sn.commit('uc', 'u');
    await h.sn.update({ name: 'uc', labels: { k: 'v' } }, 'labels.k');
    assert.deepEqual((await h.sn.stat('uc')).labels, { k: 'v' });
  });

  test('labels: key plus value at most 4096 bytes (counted in bytes), on prepare, view, commit and update', async (h) => {
    const fits = { k: 'v'.repeat(4095) };
    const over = { k: 'v'.repeat(4096) };
    // 2-byte characters: 2049 chars but 4098 bytes.
    const overInBytes = { é: 'é'.repeat(2048) };
    await h.sn.prepare('fits', undefined, { labels: fits });
    assert.deepEqual((await h.sn.stat('fits')).labels, fits);
    for (const labels of [over, overInBytes]) {
      await expectRefusedTwice(h, () => h.sn.prepare('over', undefined, { labels }), ...INVALID);
      await expectRefusedTwice(h, () => h.sn.view('over', undefined, { labels }), ...INVALID);
      await expectRefusedTwice(h, () => h.sn.update({ name: 'fits', labels }), ...INVALID);
      await expectRefusedTwice(h, () => h.sn.commit('over', 'fits', { labels }), ...INVALID);
    }
    await h.sn.commit('fitsC', 'fits', { labels: fits });
  });

  test('walk filters: name, parent, parent!="", kind, labels.k, labels.k==v; comma is AND, separate strings OR', async (h) => {
    await h.layer('base', undefined, async () => {}, { labels: { tier: 'gold', team: 'a' } });
    await h.layer('mid', 'base', async () => {}, { labels: { tier: 'silver' } });
    await h.sn.prepare('act', 'mid', { labels: { tier: 'gold', team: 'b' } });
    await h.sn.view('vw', 'base', { labels: { team: 'a' } });
    await h.sn.prepare('lone');
    const names = async (...filters: string[]): Promise<string[]> => (await h.infos(...filters)).map((i) => i.name);

    assert.deepEqual(await names(), ['act', 'base', 'lone', 'mid', 'vw']);
    assert.deepEqual(await names('name==mid'), ['mid']);
    assert.deepEqual(await names('parent==base'), ['mid', 'vw']);
    assert.deepEqual(await names('parent!=""'), ['act', 'mid', 'vw']);
    assert.deepEqual(await names('kind==active'), ['act', 'lone']);
    assert.deepEqual(await names('kind==view'), ['vw']);
    assert.deepEqual(await names('kind==committed'), ['base', 'mid']);
    assert.deepEqual(await names('labels.team'), ['act', 'base', 'vw']);
    assert.deepEqual(await names('labels.tier==gold'), ['act', 'base']);
    assert.deepEqual(await names('labels.tier==gold,kind==committed'), ['base'], 'comma is AND');
    assert.deepEqual(await names('labels.tier==gold,labels.team==b'), ['act']);
    assert.deepEqual(await names('kind==view', 'name==lone'), ['lone', 'vw'], 'separate filters are OR');
    assert.deepEqual(await names('labels.tier==silver', 'labels.team==a,kind==view', 'name==nothing'), ['mid', 'vw']);
    assert.deepEqual(await names('name==nothing'), []);

    const act = (await h.infos('name==act'))[0]!;
    assert.equal(act.kind, 'active');
    assert.equal(act.parent, 'mid');
    assert.deepEqual(act.labels, { tier: 'gold', team: 'b' });
  });

  test('stat inside a walk callback works (no deadlock), and so does an async callback', async (h) => {
    await h.layer('base', undefined, async () => {});
    await h.sn.prepare('a', 'base');
    await h.sn.view('v', 'base');
    const seen: string[] = [];
    const walked = h.sn.walk(async (info) => {
      const st = await h.sn.stat(info.name);
      assert.equal(st.kind, info.kind);
      seen.push(st.name);
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('walk with stat inside did not finish within 5 s (deadlock?)')), 5000);
    });
    try {
      await Promise.race([walked, timeout]);
    } finally {
      clearTimeout(timer);
    }
    assert.deepEqual(seen.sort(), ['a', 'base', 'v']);
  });

  test('after remove, a key (and a committed name) can be used again', async (h) => {
    await h.sn.prepare('k');
    await h.sn.remove('k');
    await h.sn.prepare('k');
    await h.sn.remove('k');
    await h.sn.view('k');
    await h.sn.remove('k');
    await h.layer('name', undefined, async (d) => writeFile(join(d, 'old'), 'old'));
    await h.sn.remove('name');
    await h.layer('name', undefined, async (d) => writeFile(join(d, 'new'), 'new'));
    await h.withView('name', async (d) => {
      assert.deepEqual(await readdir(d), ['new'], 'the re-used name holds only the new data');
    });
  });

  test('close twice is fine; reopening the root shows the same snapshots', async (h) => {
    await h.layer('base', undefined, async (d) => writeFile(join(d, 'f'), 'x'));
    await h.sn.prepare('a', 'base', { labels: { l: '1' } });
    const before = await h.infos();
    await h.sn.close();
    await h.sn.close();
    const again = await h.reopen();
    try {
      assert.deepEqual(await again.infos(), before);
    } finally {
      await again.sn.close();
    }
  });
}

/** The path under root of the file with this inode number and content (found by walking root). */
async function findFile(root: string, ino: number, content: string): Promise<string | undefined> {
  const visit = async (p: string): Promise<string | undefined> => {
    const st = await lstat(p);
    if (st.isFile() && st.ino === ino && (await readFile(p, 'utf8')) === content) return p;
    if (!st.isDirectory()) return undefined;
    for (const name of await readdir(p)) {
      const hit = await visit(join(p, name));
      if (hit) return hit;
    }
    return undefined;
  };
  return visit(root);
}

/** Path → inode of every regular file under `dir` on `dir`'s own filesystem (mounted filesystems below are not entered). */
async function filesOnDevice(dir: string): Promise<Map<string, number>> {
  const dev = (await lstat(dir)).dev;
  const out = new Map<string, number>();
  const visit = async (p: string): Promise<void> => {
    const st = await lstat(p);
    if (st.dev !== dev) return;
    if (st.isFile()) out.set(p, st.ino);
    if (st.isDirectory()) for (const name of await readdir(p)) await visit(join(p, name));
  };
  await visit(dir);
  return out;
}
