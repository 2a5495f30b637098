/** The filesystem behaviours of snapshotter-conformance.md (1–14), each through real mounts. */
import assert from 'node:assert/strict';
import { chmod, chown, lchown, link, lstat, mkdir, readdir, readFile, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { AlreadyExistsError, FailedPreconditionError } from '../../errors.js';
import { FUSE_OVERLAYFS_MOUNT_TYPE } from '../mount.js';
import type { Mount } from '../snapshotter.js';
import { expectError, nextSecond } from './harness.js';
import type { Register } from './suite.js';
import { hardlinkGroups, listing, snapshotTree } from './tree.js';

const PRECONDITION = [FailedPreconditionError, 'ERR_FAILED_PRECONDITION'] as const;
const EXISTS = [AlreadyExistsError, 'ERR_ALREADY_EXISTS'] as const;

/** Writes a file, creating its parent directories. */
export async function put(dir: string, rel: string, content: string | Buffer, mode?: number): Promise<void> {
  await mkdir(dirname(join(dir, rel)), { recursive: true });
  await writeFile(join(dir, rel), content);
  if (mode !== undefined) await chmod(join(dir, rel), mode);
}

const read = (dir: string, rel: string): Promise<string> => readFile(join(dir, rel), 'utf8');
const perm = async (p: string): Promise<number> => (await lstat(p)).mode & 0o7777;
const owner = async (p: string): Promise<string> => {
  const st = await lstat(p);
  return `${st.uid}:${st.gid}`;
};
const entries = async (dir: string): Promise<string[]> => listing(await snapshotTree(dir));

export function registerFilesystem(test: Register): void {
  test('1 basic cycle: base + change seen exactly through a view; base cannot go while top exists; top then base can', async (h) => {
    await h.layer('base', undefined, async (d) => {
      await put(d, 'a/f1', 'one');
      await put(d, 'a/f2', 'two');
      await put(d, 'b/x', 'x');
      await put(d, 'top', 'top');
    });
    const active = await h.prepare('top-active', 'base');
    assert.deepEqual(await entries(active), ['a/', 'a/f1', 'a/f2', 'b/', 'b/x', 'top'], 'the active snapshot starts with the base');
    await put(active, 'added', 'new file');
    await put(active, 'a/f1', 'one, rewritten');
    await rm(join(active, 'b'), { recursive: true });
    await h.commit('top', 'top-active');
    await h.withView('top', async (v) => {
      assert.deepEqual(await entries(v), ['a/', 'a/f1', 'a/f2', 'added', 'top']);
      assert.equal(await read(v, 'a/f1'), 'one, rewritten');
      assert.equal(await read(v, 'a/f2'), 'two');
      assert.equal(await read(v, 'added'), 'new file');
      assert.equal(await read(v, 'top'), 'top');
    });
    await h.withView('base', async (v) => {
      assert.deepEqual(await entries(v), ['a/', 'a/f1', 'a/f2', 'b/', 'b/x', 'top'], 'the base is unchanged by its child');
      assert.equal(await read(v, 'a/f1'), 'one');
    });
    await expectError(() => h.sn.remove('base'), ...PRECONDITION, /cannot remove snapshot with child/);
    await h.sn.remove('top');
    await h.sn.remove('base');
    assert.deepEqual(await h.infos(), []);
  });

  test('2 stat: an active snapshot (key, active, no parent) and a committed one (name, committed)', async (h) => {
    await h.prepare('the-key');
    let info = await h.sn.stat('the-key');
    assert.equal(info.name, 'the-key');
    assert.equal(info.kind, 'active');
    assert.equal(info.parent, undefined);
    assert.deepEqual(info.labels, {});
    assert.ok(info.created instanceof Date && info.updated instanceof Date);
    await h.commit('the-name', 'the-key');
    info = await h.sn.stat('the-name');
    assert.equal(info.name, 'the-name');
    assert.equal(info.kind, 'committed');
    assert.equal(info.parent, undefined);
  });

  test('3 chain A <- B: B names A as parent, A has none; an active on B names B', async (h) => {
    await h.layer('A', undefined, async (d) => put(d, 'a', 'a'));
    await h.layer('B', 'A', async (d) => put(d, 'b', 'b'));
    await h.sn.prepare('C', 'B');
    assert.equal((await h.sn.stat('A')).parent, undefined);
    assert.equal((await h.sn.stat('B')).parent, 'A');
    assert.equal((await h.sn.stat('C')).parent, 'B');
    assert.equal((await h.sn.stat('B')).kind, 'committed');
    await h.withView('B', async (v) => assert.deepEqual(await entries(v), ['a', 'b']));
  });

  test('4 re-using a key fails: prepare+view, prepare+prepare, view+view, view+prepare', async (h) => {
    await h.layer('base', undefined, async (d) => put(d, 'f', 'f'));
    await h.prepare('p', 'base');
    await expectError(() => h.sn.view('p', 'base'), ...EXISTS);
    await expectError(() => h.sn.prepare('p', 'base'), ...EXISTS);
    await h.sn.view('v', 'base');
    await expectError(() => h.sn.view('v', 'base'), ...EXISTS);
    await expectError(() => h.sn.prepare('v', 'base'), ...EXISTS);
    assert.equal((await h.sn.stat('p')).kind, 'active');
    assert.equal((await h.sn.stat('v')).kind, 'view');
  });

  test('5 newest wins: content and mode changed in five layers across second boundaries, also with identical size and mtime', async (h) => {
    const modes = [0o644, 0o600, 0o755, 0o640, 0o711];
    const pinned = 1_500_000_000; // the same mtime every round: a change must not hide behind it
    let parent: string | undefined;
    for (let round = 0; round < 5; round++) {
      await nextSecond();
      const name = `round-${round}`;
      await h.layer(name, parent, async (d) => {
        await put(d, 'natural', `natural content of round ${round}`, modes[round]);
        await put(d, 'pinned', `pinned #${round}`, modes[(round + 2) % 5]);
        await utimes(join(d, 'pinned'), pinned, pinned);
      });
      parent = name;
      await h.withView(name, async (v) => {
        assert.equal(await read(v, 'natural'), `natural content of round ${round}`, `round ${round}: newest content`);
        assert.equal(await perm(join(v, 'natural')), modes[round], `round ${round}: newest mode`);
        assert.equal(await read(v, 'pinned'), `pinned #${round}`, `round ${round}: newest content despite same size and mtime`);
        assert.equal(await perm(join(v, 'pinned')), modes[(round + 2) % 5]);
        assert.equal((await stat(join(v, 'pinned'))).mtimeMs, pinned * 1000);
      });
    }
  }, { timeout: 30_000 });

  test('6 opaque directory: removed and re-created in one layer, added to in the next: only the new content shows', async (h) => {
    await h.layer('l1', undefined, async (d) => {
      await put(d, 'd/a', 'a');
      await put(d, 'd/b', 'b');
      await put(d, 'd/sub/c', 'c');
      await chmod(join(d, 'd'), 0o700);
      await put(d, 'keep', 'keep');
    });
    await h.layer('l2', 'l1', async (d) => {
      await rm(join(d, 'd'), { recursive: true });
      await mkdir(join(d, 'd'), { mode: 0o755 });
      await chmod(join(d, 'd'), 0o755);
      await put(d, 'd/new', 'new');
    });
    await h.layer('l3', 'l2', async (d) => put(d, 'd/third', 'third'));
    await h.withView('l2', async (v) => {
      assert.deepEqual(await entries(v), ['d/', 'd/new', 'keep']);
      assert.equal(await perm(join(v, 'd')), 0o755);
    });
    await h.withView('l3', async (v) => {
      assert.deepEqual(await entries(v), ['d/', 'd/new', 'd/third', 'keep']);
      assert.equal(await read(v, 'd/new'), 'new');
    });
    const dir = await h.prepare('l4', 'l3');
    assert.deepEqual(await readdir(join(dir, 'd')).then((l) => l.sort()), ['new', 'third'], 'also through an active mount');
  });

  test('7 chown of nested directories, files and a symlink in an upper layer shows in the merged view', async (h) => {
    await h.layer('l1', undefined, async (d) => {
      await put(d, 'a/b/c/f', 'f');
      await put(d, 'a/f', 'f');
      await put(d, 'a/b/g', 'g');
      await symlink('f', join(d, 'a/link'));
    });
    const owners: Record<string, [number, number]> = {
      a: [1001, 1002],
      'a/b': [1003, 1004],
      'a/b/c': [1005, 1006],
      'a/b/c/f': [1007, 1008],
      'a/f': [1009, 1010],
      'a/link': [1011, 1012],
    };
    await h.layer('l2', 'l1', async (d) => {
      for (const [p, [u, g]] of Object.entries(owners)) await lchown(join(d, p), u, g);
    });
    await h.withView('l2', async (v) => {
      for (const [p, [u, g]] of Object.entries(owners)) assert.equal(await owner(join(v, p)), `${u}:${g}`, p);
      assert.equal(await owner(join(v, 'a/b/g')), '0:0', 'an entry not chowned keeps its owner');
      assert.equal(await read(v, 'a/b/c/f'), 'f');
    });
    await h.withView('l1', async (v) => assert.equal(await owner(join(v, 'a/b/c/f')), '0:0', 'the lower layer is unchanged'));
  });

  test('8 directory ownership and mode survive commit when directories are removed and re-created across three layers', async (h) => {
    // Owner first, then mode: a chown may clear setgid (zfs-fuse does, also for root); the mode set last must stay.
    const mk = async (d: string, p: string, mode: number, uid: number): Promise<void> => {
      await mkdir(join(d, p));
      await chown(join(d, p), uid, uid + 1);
      await chmod(join(d, p), mode);
    };
    await h.layer('l1', undefined, async (d) => {
      await mk(d, 'd1', 0o700, 100);
      await mk(d, 'd2', 0o750, 110);
      await mk(d, 'd2/inner', 0o705, 120);
      await put(d, 'd1/f', 'f');
    });
    await h.layer('l2', 'l1', async (d) => {
      await rm(join(d, 'd1'), { recursive: true });
      await mk(d, 'd1', 0o711, 200);
      await chmod(join(d, 'd2'), 0o755);
      await chown(join(d, 'd2'), 210, 211);
      await mk(d, 'd3', 0o1777, 220);
    });
    await h.layer('l3', 'l2', async (d) => {
      await rm(join(d, 'd2'), { recursive: true });
      await mk(d, 'd2', 0o2755, 310);
      await put(d, 'd1/x', 'x');
    });
    const expect: Record<string, Record<string, [number, string]>> = {
      l1: { d1: [0o700, '100:101'], d2: [0o750, '110:111'], 'd2/inner': [0o705, '120:121'] },
      l2: { d1: [0o711, '200:201'], d2: [0o755, '210:211'], 'd2/inner': [0o705, '120:121'], d3: [0o1777, '220:221'] },
      l3: { d1: [0o711, '200:201'], d2: [0o2755, '310:311'], d3: [0o1777, '220:221'] },
    };
    for (const [layer, dirs] of Object.entries(expect)) {
      await h.withView(layer, async (v) => {
        for (const [p, [mode, own]] of Object.entries(dirs)) {
          assert.equal((await perm(join(v, p))).toString(8), mode.toString(8), `${layer}: mode of ${p}`);
          assert.equal(await owner(join(v, p)), own, `${layer}: owner of ${p}`);
        }
      });
    }
    await h.withView('l3', async (v) => assert.deepEqual(await entries(v), ['d1/', 'd1/x', 'd2/', 'd3/']));
  });

  test('9 a committed snapshot with a child cannot be removed; removal top-down works', async (h) => {
    await h.layer('c1', undefined, async (d) => put(d, '1', '1'));
    await h.layer('c2', 'c1', async (d) => put(d, '2', '2'));
    await h.layer('c3', 'c2', async (d) => put(d, '3', '3'));
    await expectError(() => h.sn.remove('c1'), ...PRECONDITION, /cannot remove snapshot with child/);
    await expectError(() => h.sn.remove('c2'), ...PRECONDITION, /cannot remove snapshot with child/);
    await h.withView('c3', async (v) => assert.deepEqual(await entries(v), ['1', '2', '3']));
    await h.sn.remove('c3');
    await expectError(() => h.sn.remove('c1'), ...PRECONDITION, /cannot remove snapshot with child/);
    await h.sn.remove('c2');
    await h.sn.remove('c1');
    assert.deepEqual(await h.infos(), []);
  });

  test('10 a file and a directory deleted in layer 2 stay deleted in layer 3', async (h) => {
    await h.layer('l1', undefined, async (d) => {
      await put(d, 'a', 'a');
      await put(d, 'b', 'b');
      await put(d, 'dir/x', 'x');
      await put(d, 'dir/sub/y', 'y');
    });
    await h.layer('l2', 'l1', async (d) => {
      await rm(join(d, 'a'));
      await rm(join(d, 'dir'), { recursive: true });
    });
    await h.layer('l3', 'l2', async (d) => put(d, 'c', 'c'));
    await h.withView('l2', async (v) => assert.deepEqual(await entries(v), ['b']));
    await h.withView('l3', async (v) => assert.deepEqual(await entries(v), ['b', 'c']));
    const active = await h.prepare('l4', 'l3');
    assert.deepEqual(await entries(active), ['b', 'c']);
    await assert.rejects(lstat(join(active, 'a')), { code: 'ENOENT' });
  });

  test('11 files moved and hardlinked from a lower layer into a new directory, originals removed', async (h) => {
    await h.layer('l1', undefined, async (d) => {
      await put(d, 'orig/x', 'x content', 0o640);
      await put(d, 'orig/y', 'y content', 0o604);
      await put(d, 'orig/z', 'z content');
    });
    await h.layer('l2', 'l1', async (d) => {
      await mkdir(join(d, 'new'));
      await rename(join(d, 'orig/x'), join(d, 'new/x'));
      await link(join(d, 'orig/y'), join(d, 'new/y'));
      await link(join(d, 'orig/y'), join(d, 'new/y2'));
      await rm(join(d, 'orig'), { recursive: true });
    });
    await h.withView('l2', async (v) => {
      const tree = await snapshotTree(v);
      assert.deepEqual(listing(tree), ['new/', 'new/x', 'new/y', 'new/y2']);
      assert.equal(await read(v, 'new/x'), 'x content');
      assert.equal(await read(v, 'new/y'), 'y content');
      assert.equal(await perm(join(v, 'new/x')), 0o640);
      assert.equal(await perm(join(v, 'new/y')), 0o604);
      assert.deepEqual(hardlinkGroups(tree), [['new/y', 'new/y2']], 'the two links made in layer 2 are one inode');
    });
    await h.withView('l1', async (v) => assert.deepEqual(await entries(v), ['orig/', 'orig/x', 'orig/y', 'orig/z']));
  });

  test('12 a view is read-only: writes through its mount fail with EROFS (views of 0, 1 and 2 layers)', async (h) => {
    await h.layer('l1', undefined, async (d) => put(d, 'f', 'f'));
    await h.layer('l2', 'l1', async (d) => put(d, 'g', 'g'));
    for (const parent of [undefined, 'l1', 'l2']) {
      const key = `view-of-${parent ?? 'nothing'}`;
      const v = await h.mount(await h.sn.view(key, parent), key);
      await assert.rejects(writeFile(join(v, 'new'), 'x'), { code: 'EROFS' }, `create in ${key}`);
      await assert.rejects(mkdir(join(v, 'newdir')), { code: 'EROFS' }, `mkdir in ${key}`);
      if (parent) {
        await assert.rejects(writeFile(join(v, 'f'), 'changed'), { code: 'EROFS' }, `overwrite in ${key}`);
        await assert.rejects(chmod(join(v, 'f'), 0o600), { code: 'EROFS' }, `chmod in ${key}`);
        await assert.rejects(rm(join(v, 'f')), { code: 'EROFS' }, `unlink in ${key}`);
        assert.equal(await read(v, 'f'), 'f');
      }
      await h.unmount(v);
    }
    await h.withView('l2', async (v) => assert.deepEqual(await entries(v), ['f', 'g']));
  });

  test('13 a fresh root from prepare(key) with no parent is an empty directory of mode 0755 owned by root', async (h) => {
    const d = await h.prepare('fresh');
    const st = await stat(d);
    assert.ok(st.isDirectory());
    assert.equal((st.mode & 0o7777).toString(8), '755');
    assert.equal(`${st.uid}:${st.gid}`, '0:0');
    assert.deepEqual(await readdir(d), []);
    await h.commit('fresh-c', 'fresh');
    await h.withView('fresh-c', async (v) => assert.equal(((await stat(v)).mode & 0o7777).toString(8), '755'));
  });

  test('14 renames: a file over another, a file to a new name; a lower directory where the backend supports it', async (h, t) => {
    await h.layer('l1', undefined, async (d) => {
      await put(d, 'a', 'content a');
      await put(d, 'b', 'content b');
      await put(d, 'c', 'content c', 0o600);
      await put(d, 'dir/inner', 'inner');
      await put(d, 'dir/sub/deep', 'deep');
    });
    await h.layer('l2', 'l1', async (d) => {
      await rename(join(d, 'a'), join(d, 'b'));
      await rename(join(d, 'c'), join(d, 'c2'));
    });
    await h.withView('l2', async (v) => {
      assert.deepEqual(await entries(v), ['b', 'c2', 'dir/', 'dir/inner', 'dir/sub/', 'dir/sub/deep']);
      assert.equal(await read(v, 'b'), 'content a');
      assert.equal(await read(v, 'c2'), 'content c');
      assert.equal(await perm(join(v, 'c2')), 0o600);
    });
    const key = 'l3-active';
    const mounts = await h.sn.prepare(key, 'l2');
    const unsupported = await dirRenameUnsupported(mounts);
    if (unsupported) {
      t.diagnostic(`SKIP directory rename on ${h.sn.name}: ${unsupported}`);
      t.skip(`directory rename: ${unsupported}`);
      return;
    }
    const d = await h.mount(mounts, key);
    await rename(join(d, 'dir'), join(d, 'moved'));
    await h.commit('l3', key);
    await h.withView('l3', async (v) => {
      assert.deepEqual(await entries(v), ['b', 'c2', 'moved/', 'moved/inner', 'moved/sub/', 'moved/sub/deep']);
      assert.equal(await read(v, 'moved/sub/deep'), 'deep');
    });
  });
}

/**
 * Overlay renames a directory of a lower layer only with redirect_dir (else EXDEV, which
 * rename(2) callers like mv turn into a copy); fuse-overlayfs never does. Returns why it is
 * unsupported, or undefined.
 */
async function dirRenameUnsupported(mounts: Mount[]): Promise<string | undefined> {
  if (mounts.some((m) => m.type === FUSE_OVERLAYFS_MOUNT_TYPE)) return 'fuse-overlayfs renames a directory of a lower layer with EXDEV (it has no redirect_dir)';
  const overlay = mounts.find((m) => m.type === 'overlay');
  if (!overlay) return undefined;
  const opt = overlay.options.find((o) => o.startsWith('redirect_dir='));
  if (opt) return opt === 'redirect_dir=on' ? undefined : `overlay mounted with ${opt}: renaming a lower directory gives EXDEV`;
  const def = (await readFile('/sys/module/overlay/parameters/redirect_dir', 'utf8').catch(() => 'N')).trim();
  return def === 'Y' ? undefined : 'overlay without redirect_dir (kernel default off, not in the mount options): renaming a lower directory gives EXDEV';
}
