/** The further points: usage, cleanup freeing disk, open files and hardlinks across commit, concurrent prepares, xattrs across layers. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { chmod, link, lstat, mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from '../../errors.js';
import { diskBytes, expectError } from './harness.js';
import type { Register } from './suite.js';
import { hardlinkGroups, snapshotTree } from './tree.js';
import { xattrs } from './xattr.js';

const MiB = 1024 * 1024;
const run = promisify(execFile);

export function registerExtras(test: Register): void {
  test('usage grows with the bytes written and counts inodes; a committed snapshot keeps its usage', async (h) => {
    const d = await h.prepare('u');
    const u0 = await h.sn.usage('u');
    await mkdir(join(d, 'x'));
    await mkdir(join(d, 'x/y'));
    for (const p of ['a', 'x/b', 'x/y/c']) await writeFile(join(d, p), randomBytes(MiB));
    const u1 = await h.sn.usage('u');
    assert.ok(u1.size - u0.size >= 3 * MiB, `usage grew by ${u1.size - u0.size} bytes after writing 3 MiB`);
    assert.ok(u1.size - u0.size < 4 * MiB, `usage grew by ${u1.size - u0.size} bytes after writing 3 MiB`);
    assert.ok(u1.inodes - u0.inodes >= 5 && u1.inodes - u0.inodes <= 6, `inodes grew by ${u1.inodes - u0.inodes} after creating 3 files and 2 directories`);
    await h.commit('uc', 'u');
    const uc = await h.sn.usage('uc');
    assert.ok(Math.abs(uc.size - u1.size) < 256 * 1024, `committed usage ${uc.size} vs active ${u1.size}`);
    assert.equal(uc.inodes, u1.inodes);
    const c = await h.prepare('child', 'uc');
    const c0 = await h.sn.usage('child');
    await writeFile(join(c, 'more'), randomBytes(2 * MiB));
    const c1 = await h.sn.usage('child');
    assert.ok(c1.size - c0.size >= 2 * MiB, `child usage grew by ${c1.size - c0.size} bytes after writing 2 MiB`);
    assert.equal(c1.inodes - c0.inodes, 1);
    await expectError(() => h.sn.usage('missing'), NotFoundError, 'ERR_NOT_FOUND');
  });

  test('remove then cleanup frees the disk, and leaves live snapshots intact', async (h) => {
    await h.layer('keep', undefined, async (d) => writeFile(join(d, 'kept'), 'kept'));
    await h.layer('big', undefined, async (d) => writeFile(join(d, 'big'), randomBytes(8 * MiB)));
    await h.sn.prepare('big-child', 'big');
    const before = await diskBytes(h.root);
    await h.sn.remove('big-child');
    await h.sn.remove('big');
    await h.sn.cleanup();
    const after = await diskBytes(h.root);
    assert.ok(before - after >= 8 * MiB, `remove + cleanup freed ${before - after} bytes of an 8 MiB snapshot (root: ${before} → ${after})`);
    await h.sn.cleanup();
    await h.withView('keep', async (v) => assert.equal(await readFile(join(v, 'kept'), 'utf8'), 'kept'));
    await h.layer('big', undefined, async (d) => writeFile(join(d, 'again'), 'again'));
    await h.withView('big', async (v) => assert.deepEqual(await readdir(v), ['again']));
  });

  test('open files and hardlinks survive commit (committed while mounted, with a written fd still open)', async (h) => {
    const d = await h.prepare('open');
    const fh = await open(join(d, 'f'), 'w');
    try {
      await fh.write('written through an fd');
      await fh.sync();
      await mkdir(join(d, 'sub'));
      await link(join(d, 'f'), join(d, 'sub/f-link'));
      await writeFile(join(d, 'g'), 'g');
      await link(join(d, 'g'), join(d, 'g2'));
      await link(join(d, 'g'), join(d, 'sub/g3'));
      await h.sn.commit('c', 'open');
    } finally {
      await fh.close();
    }
    await h.unmountKey('open');
    const groups = [['f', 'sub/f-link'], ['g', 'g2', 'sub/g3']];
    await h.withView('c', async (v) => {
      const tree = await snapshotTree(v);
      assert.deepEqual(hardlinkGroups(tree), groups);
      assert.equal(await readFile(join(v, 'sub/f-link'), 'utf8'), 'written through an fd');
      assert.equal((await stat(join(v, 'g'))).nlink, 3);
    });
    const child = await h.prepare('child', 'c');
    assert.deepEqual(hardlinkGroups(await snapshotTree(child)), groups, 'hardlinks of the parent through an active snapshot on it');
    await writeFile(join(child, 'new'), 'n');
    await h.commit('c2', 'child');
    await h.withView('c2', async (v) => assert.deepEqual(hardlinkGroups(await snapshotTree(v)), groups));
  });

  test('concurrent prepares on one parent: 8 distinct snapshots; 8 racing on one key: exactly one wins', async (h) => {
    await h.layer('base', undefined, async (d) => writeFile(join(d, 'shared'), 'shared'));
    const keys = Array.from({ length: 8 }, (_, i) => `concurrent-${i}`);
    const all = await Promise.all(keys.map((k) => h.sn.prepare(k, 'base')));
    assert.equal(new Set(all.map((m) => JSON.stringify(m))).size, 8, 'eight different mounts');
    const dirs = [];
    for (const [i, k] of keys.entries()) {
      const dir = await h.mount(all[i]!, k);
      await writeFile(join(dir, 'mine'), k);
      dirs.push(dir);
    }
    for (const [i, dir] of dirs.entries()) {
      assert.deepEqual((await readdir(dir)).sort(), ['mine', 'shared']);
      assert.equal(await readFile(join(dir, 'mine'), 'utf8'), keys[i]);
    }
    assert.equal((await h.infos('kind==active,parent==base')).length, 8);
    for (const k of keys) await h.unmountKey(k);
    await Promise.all(keys.map((k, i) => h.sn.commit(`done-${i}`, k)));
    for (const [i, k] of keys.entries()) await h.withView(`done-${i}`, async (v) => assert.equal(await readFile(join(v, 'mine'), 'utf8'), k));

    const race = await Promise.allSettled(Array.from({ length: 8 }, () => h.sn.prepare('same', 'base')));
    assert.equal(race.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one prepare of the same key wins');
    for (const r of race) {
      if (r.status === 'rejected') {
        assert.ok(r.reason instanceof AlreadyExistsError, `a losing prepare fails with AlreadyExists, got ${(r.reason as Error).message}`);
        assert.equal((r.reason as AlreadyExistsError).code, 'ERR_ALREADY_EXISTS');
      }
    }
    assert.equal((await h.infos('name==same')).length, 1);
  });

  test('xattrs set in a lower layer and added to in an upper layer show through the merged view', async (h, t) => {
    const x = await xattrs();
    if (typeof x === 'string') {
      t.diagnostic(`SKIP xattrs: ${x}`);
      t.skip(x);
      return;
    }
    await h.layer('l1', undefined, async (d) => {
      await writeFile(join(d, 'f'), 'f');
      await mkdir(join(d, 'dir'));
      await x.set(d, 'f', 'user.one', Buffer.from('1'));
      await x.set(d, 'dir', 'user.dir', Buffer.from([0, 1, 2, 255]));
    });
    await h.layer('l2', 'l1', async (d) => x.set(d, 'f', 'user.two', Buffer.from('2')));
    await h.withView('l1', async (v) => {
      assert.deepEqual(x.read(join(v, 'f')), { 'user.one': Buffer.from('1') });
    });
    await h.withView('l2', async (v) => {
      assert.deepEqual(x.read(join(v, 'f')), { 'user.one': Buffer.from('1'), 'user.two': Buffer.from('2') });
      assert.deepEqual(x.read(join(v, 'dir')), { 'user.dir': Buffer.from([0, 1, 2, 255]) });
    });
  });

  test('special files (fifo, char and block devices), setuid/setgid/sticky, odd and long names, deep paths survive commit and a child', async (h) => {
    const name255 = 'n'.repeat(250) + '.long';
    const odd = ['with space', 'colon:and,comma', 'back\\slash', 'ünïcødé ✓', '-leading-dash', '.hidden', 'new\nline'];
    const deep = Array.from({ length: 40 }, (_, i) => `level${i}`).join('/');
    await h.layer('l1', undefined, async (d) => {
      await run('mkfifo', ['-m', '0640', join(d, 'fifo')]);
      await run('mknod', ['-m', '0600', join(d, 'null-like'), 'c', '1', '3']);
      await run('mknod', ['-m', '0660', join(d, 'blockdev'), 'b', '7', '200']);
      await writeFile(join(d, 'suid'), 's');
      await chmod(join(d, 'suid'), 0o4755);
      await writeFile(join(d, 'sgid'), 's');
      await chmod(join(d, 'sgid'), 0o2750);
      await mkdir(join(d, 'sticky'));
      await chmod(join(d, 'sticky'), 0o1777);
      await writeFile(join(d, name255), 'long');
      for (const n of odd) await writeFile(join(d, n), n);
      await mkdir(dirname(join(d, deep, 'f')), { recursive: true });
      await writeFile(join(d, deep, 'f'), 'deep');
    });
    const check = async (v: string, where: string): Promise<void> => {
      const fifo = await lstat(join(v, 'fifo'));
      assert.ok(fifo.isFIFO(), `${where}: fifo`);
      assert.equal(fifo.mode & 0o7777, 0o640, `${where}: fifo mode`);
      const c = await lstat(join(v, 'null-like'));
      assert.ok(c.isCharacterDevice(), `${where}: char device`);
      assert.equal(c.rdev, (1 << 8) | 3, `${where}: char device 1:3`);
      const b = await lstat(join(v, 'blockdev'));
      assert.ok(b.isBlockDevice(), `${where}: block device`);
      assert.equal(b.rdev, (7 << 8) | 200, `${where}: block device 7:200`);
      assert.equal((await lstat(join(v, 'suid'))).mode & 0o7777, 0o4755, `${where}: setuid`);
      assert.equal((await lstat(join(v, 'sgid'))).mode & 0o7777, 0o2750, `${where}: setgid`);
      assert.equal((await lstat(join(v, 'sticky'))).mode & 0o7777, 0o1777, `${where}: sticky`);
      assert.equal(await readFile(join(v, name255), 'utf8'), 'long', `${where}: 255-byte name`);
      for (const n of odd) assert.equal(await readFile(join(v, n), 'utf8'), n, `${where}: ${JSON.stringify(n)}`);
      assert.equal(await readFile(join(v, deep, 'f'), 'utf8'), 'deep', `${where}: 40 levels deep`);
    };
    await h.withView('l1', (v) => check(v, 'view of l1'));
    await h.layer('l2', 'l1', async (d) => {
      await check(d, 'active on l1');
      await writeFile(join(d, 'added'), 'a');
    });
    await h.withView('l2', (v) => check(v, 'view of l2'));
  });

  test('keys that look like paths ("../../x", "a/b", absolute) are names only: round trip, nothing written outside the root', async (h) => {
    const outside = async (): Promise<string[]> => (await readdir(dirname(h.baseDir))).filter((n) => n.includes('escape')).sort();
    const before = await outside();
    const keys = ['../../escape-key', 'a/b/c', '/tmp/escape-abs', 'sp ace:colon,comma', '.', '..'];
    let parent: string | undefined;
    for (const [i, key] of keys.entries()) {
      const d = await h.prepare(key, parent);
      await writeFile(join(d, `f${i}`), key);
      await h.commit(`${key}@committed`, key);
      parent = `${key}@committed`;
    }
    await h.withView(parent, async (v) => {
      assert.deepEqual((await readdir(v)).sort(), keys.map((_, i) => `f${i}`).sort());
      for (const [i, key] of keys.entries()) assert.equal(await readFile(join(v, `f${i}`), 'utf8'), key);
    });
    assert.deepEqual((await h.infos()).map((i) => i.name).sort(), keys.map((k) => `${k}@committed`).sort());
    assert.deepEqual(await outside(), before, 'nothing named after a key appeared beside the snapshotter');
  });

  test('two snapshotter instances on one root: racing prepares of one key, one winner; each sees the other\'s commits', async (h) => {
    await h.layer('base', undefined, async (d) => writeFile(join(d, 'f'), 'f'));
    const other = await h.openAnother();
    try {
      const race = await Promise.allSettled([
        h.sn.prepare('shared', 'base'),
        other.prepare('shared', 'base'),
        h.sn.prepare('shared', 'base'),
        other.prepare('shared', 'base'),
      ]);
      assert.equal(race.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one prepare wins across instances');
      for (const r of race) if (r.status === 'rejected') assert.equal((r.reason as AlreadyExistsError).code, 'ERR_ALREADY_EXISTS', String(r.reason));
      await other.prepare('from-other', 'base');
      assert.equal((await h.sn.stat('from-other')).kind, 'active', 'an instance sees what the other prepared');
      await other.commit('committed-by-other', 'from-other');
      assert.equal((await h.sn.stat('committed-by-other')).kind, 'committed');
      await expectError(() => h.sn.remove('base'), FailedPreconditionError, 'ERR_FAILED_PRECONDITION', /cannot remove snapshot with child/);
    } finally {
      await other.close();
    }
  });
}
