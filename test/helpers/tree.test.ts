import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, link, mkdir, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { TempDirs } from './tmp.js';
import { assertSameDirs, assertSameTree, compareTrees, snapshotTree, type TreeEntry } from './tree.js';

const run = promisify(execFile);
const tmp = new TempDirs();
after(() => tmp.cleanup());

const IS_ROOT = process.getuid?.() === 0;
const HAVE_SETFATTR = existsSync('/usr/bin/setfattr');

async function setXattr(path: string, name: string, hexValue: string): Promise<void> {
  await run('setfattr', ['-h', '-n', name, '-v', `0x${hexValue}`, path]);
}

/** A small tree with one of every kind of entry this helper tells apart. */
async function makeTree(dir: string): Promise<void> {
  await mkdir(join(dir, 'etc/sub'), { recursive: true });
  await writeFile(join(dir, 'etc/hosts'), '127.0.0.1 localhost\n');
  await writeFile(join(dir, 'etc/sub/ünï cödé'), 'unicode name\n');
  await writeFile(join(dir, 'bin'), '#!/bin/sh\n');
  await chmod(join(dir, 'bin'), 0o4755);
  await writeFile(join(dir, 'one'), 'linked\n');
  await link(join(dir, 'one'), join(dir, 'two'));
  await link(join(dir, 'one'), join(dir, 'etc/three'));
  await symlink('../one', join(dir, 'etc/link'));
  await run('mkfifo', [join(dir, 'fifo')]);
  if (IS_ROOT) {
    await run('mknod', [join(dir, 'null'), 'c', '1', '3']);
    await chown(join(dir, 'etc/sub'), 1000, 65534);
  }
  if (HAVE_SETFATTR) {
    await setXattr(join(dir, 'etc/hosts'), 'user.note', Buffer.from('hello').toString('hex'));
    await setXattr(join(dir, 'etc'), 'user.dir', '00ff10');
  }
}

/** A tree and an exact copy of it (cp -a keeps modes, owners, xattrs, hardlinks, times). */
async function pair(): Promise<{ a: string; b: string }> {
  const parent = await tmp.make('tree');
  const a = join(parent, 'a');
  const b = join(parent, 'b');
  await mkdir(a);
  await makeTree(a);
  await run('cp', ['-a', a, b]);
  return { a, b };
}

async function diff(a: string, b: string, opts: Parameters<typeof compareTrees>[2] = {}): Promise<string[]> {
  return compareTrees(await snapshotTree(a), await snapshotTree(b), opts);
}

describe('snapshotTree', () => {
  let entries: TreeEntry[];
  let byPath: Map<string, TreeEntry>;
  before(async () => {
    const { a } = await pair();
    entries = await snapshotTree(a);
    byPath = new Map(entries.map((e) => [e.path, e]));
  });

  test('records type, mode with special bits, content hash and symlink target', () => {
    assert.equal(entries[0]!.path, '.');
    const hosts = byPath.get('etc/hosts')!;
    assert.equal(hosts.type, 'file');
    assert.equal(hosts.size, 20);
    assert.equal(hosts.sha256, createHash('sha256').update('127.0.0.1 localhost\n').digest('hex'));
    assert.equal(byPath.get('bin')!.mode, 0o4755);
    assert.equal(byPath.get('etc/link')!.type, 'symlink');
    assert.equal(byPath.get('etc/link')!.target, '../one');
    assert.equal(byPath.get('fifo')!.type, 'fifo');
    assert.equal(byPath.get('etc/sub/ünï cödé')!.type, 'file');
    assert.equal(byPath.get('etc')!.type, 'dir');
    assert.deepEqual(
      entries.map((e) => e.path),
      [...entries.map((e) => e.path)].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
    );
  });

  test('a hardlink group is named by its smallest path, on every member', () => {
    for (const p of ['one', 'two', 'etc/three']) assert.equal(byPath.get(p)!.hardlinkGroup, 'etc/three', p);
    assert.equal(byPath.get('etc/hosts')!.hardlinkGroup, undefined);
  });

  test('devices and owners', (t) => {
    if (!IS_ROOT) return t.skip('needs root for mknod and chown');
    assert.equal(byPath.get('null')!.type, 'char');
    assert.equal(byPath.get('null')!.rdev, '1:3');
    assert.equal(byPath.get('etc/sub')!.uid, 1000);
    assert.equal(byPath.get('etc/sub')!.gid, 65534);
  });

  test('xattrs of files and directories, binary values intact', (t) => {
    if (!HAVE_SETFATTR) return t.skip('setfattr (Debian package attr) is not installed');
    assert.deepEqual(byPath.get('etc/hosts')!.xattrs, { 'user.note': Buffer.from('hello') });
    assert.deepEqual(byPath.get('etc')!.xattrs, { 'user.dir': Buffer.from([0x00, 0xff, 0x10]) });
    assert.deepEqual(byPath.get('etc/link')!.xattrs, {});
  });
});

describe('compareTrees', () => {
  test('a tree and its cp -a copy are equal, mtimes included', async () => {
    const { a, b } = await pair();
    assert.deepEqual(await diff(a, b, { mtimes: true }), []);
    await assertSameDirs(a, b, { mtimes: true });
  });

  test('content of the same size', async () => {
    const { a, b } = await pair();
    await writeFile(join(b, 'etc/hosts'), '127.0.0.2 localhost\n');
    const d = await diff(a, b);
    assert.equal(d.length, 1, d.join('\n'));
    assert.match(d[0]!, /^etc\/hosts: sha256 a="[0-9a-f]{64}" b="[0-9a-f]{64}"$/);
  });

  test('size and content', async () => {
    const { a, b } = await pair();
    await writeFile(join(b, 'etc/hosts'), 'longer content here\n\n');
    assert.deepEqual(
      (await diff(a, b)).map((l) => l.split(' ').slice(0, 2).join(' ')),
      ['etc/hosts: size', 'etc/hosts: sha256'],
    );
  });

  test('mode, including a dropped setuid bit', async () => {
    const { a, b } = await pair();
    await chmod(join(b, 'bin'), 0o755);
    assert.deepEqual(await diff(a, b), ['bin: mode a="04755" b="00755"']);
  });

  test('owner and group', async (t) => {
    if (!IS_ROOT) return t.skip('needs root for chown');
    const { a, b } = await pair();
    await chown(join(b, 'etc/sub'), 1001, 65534);
    await chown(join(b, 'etc/hosts'), 0, 5);
    assert.deepEqual(await diff(a, b), ['etc/hosts: gid a=0 b=5', 'etc/sub: uid a=1000 b=1001']);
  });

  test('symlink target', async () => {
    const { a, b } = await pair();
    await unlink(join(b, 'etc/link'));
    await symlink('/one', join(b, 'etc/link'));
    assert.deepEqual(await diff(a, b), ['etc/link: symlink target a="../one" b="/one"']);
  });

  test('type: a file replaced by a directory, a fifo by a file', async () => {
    const { a, b } = await pair();
    await rm(join(b, 'etc/hosts'));
    await mkdir(join(b, 'etc/hosts'));
    await rm(join(b, 'fifo'));
    await writeFile(join(b, 'fifo'), '');
    assert.deepEqual(await diff(a, b), ['etc/hosts: type a="file" b="dir"', 'fifo: type a="fifo" b="file"']);
  });

  test('entries only on one side, named with what they are', async () => {
    const { a, b } = await pair();
    await rm(join(b, 'etc/sub'), { recursive: true });
    await writeFile(join(b, 'extra'), 'x');
    const d = await diff(a, b);
    assert.deepEqual(d, ['etc/sub: only in a (dir 00755 ' + (IS_ROOT ? '1000:65534' : `${process.getuid!()}:${process.getgid!()}`) + ')', 'etc/sub/ünï cödé: only in a (file 00644 ' + `${process.getuid!()}:${process.getgid!()}` + ' 13 bytes)', 'extra: only in b (file 00644 ' + `${process.getuid!()}:${process.getgid!()}` + ' 1 bytes)']);
  });

  test('xattrs added, changed and removed, shown as text or hex', async (t) => {
    if (!HAVE_SETFATTR) return t.skip('setfattr (Debian package attr) is not installed');
    const { a, b } = await pair();
    await setXattr(join(b, 'etc/hosts'), 'user.note', Buffer.from('world').toString('hex'));
    await run('setfattr', ['-x', 'user.dir', join(b, 'etc')]);
    await setXattr(join(b, 'bin'), 'user.new', 'ff00');
    assert.deepEqual(await diff(a, b), [
      'bin: xattr user.new a=(absent) b=0xff00',
      'etc: xattr user.dir a=0x00ff10 b=(absent)',
      'etc/hosts: xattr user.note a="hello" b="world"',
    ]);
    assert.deepEqual(await diff(a, b, { ignoreXattr: (n) => n.startsWith('user.') }), []);
  });

  test('a hardlink broken into a copy changes the group of every member', async () => {
    const { a, b } = await pair();
    await rm(join(b, 'two'));
    await writeFile(join(b, 'two'), 'linked\n');
    assert.deepEqual(await diff(a, b), ['two: hardlink group a="etc/three" b=(none)']);
    await rm(join(b, 'etc/three'));
    await writeFile(join(b, 'etc/three'), 'linked\n');
    assert.deepEqual(await diff(a, b), [
      'etc/three: hardlink group a="etc/three" b=(none)',
      'one: hardlink group a="etc/three" b=(none)',
      'two: hardlink group a="etc/three" b=(none)',
    ]);
  });

  test('hardlinks grouped differently with the same members count', async () => {
    const { a, b } = await pair();
    // b: `two` now links to etc/hosts instead of `one`
    await rm(join(b, 'two'));
    await link(join(b, 'etc/hosts'), join(b, 'two'));
    const d = await diff(a, b);
    assert.ok(d.includes('two: hardlink group a="etc/three" b="etc/hosts"'), d.join('\n'));
    assert.ok(d.includes('etc/hosts: hardlink group a=(none) b="etc/hosts"'), d.join('\n'));
  });

  test('device numbers', async (t) => {
    if (!IS_ROOT) return t.skip('needs root for mknod');
    const { a, b } = await pair();
    await rm(join(b, 'null'));
    await run('mknod', [join(b, 'null'), 'c', '1', '5']);
    assert.deepEqual(await diff(a, b), ['null: device a="1:3" b="1:5"']);
  });

  test('mtimes only when asked, with nanoseconds', async () => {
    const { a, b } = await pair();
    await utimes(join(b, 'etc/hosts'), new Date('2020-01-01T00:00:00Z'), new Date('2020-01-01T00:00:00Z'));
    assert.deepEqual(await diff(a, b), []);
    const d = await diff(a, b, { mtimes: true });
    // etc/hosts itself (the directory's mtime did not change: utimes does not touch it)
    assert.equal(d.length, 1, d.join('\n'));
    assert.match(d[0]!, /^etc\/hosts: mtime a="\d{4}-.*Z" b="2020-01-01T00:00:00\.000000000Z"$/);
  });

  test('ignored paths are not compared', async () => {
    const { a, b } = await pair();
    await writeFile(join(b, 'etc/hosts'), 'changed\n');
    await writeFile(join(b, 'extra'), 'x');
    assert.deepEqual(await diff(a, b, { ignore: (p) => p === 'etc/hosts' || p === 'extra' }), []);
  });

  test('assertSameTree lists every difference with the names of the sides', async () => {
    const { a, b } = await pair();
    await chmod(join(b, 'bin'), 0o755);
    await writeFile(join(b, 'extra'), 'x');
    const [ta, tb] = [await snapshotTree(a), await snapshotTree(b)];
    assert.throws(
      () => assertSameTree(ta, tb, { names: ['umoci', 'stratum'] }),
      (err: Error) => {
        assert.match(err.message, /trees umoci and stratum differ in 2 way\(s\)/);
        assert.match(err.message, /bin: mode umoci="04755" stratum="00755"/);
        assert.match(err.message, /extra: only in stratum/);
        return true;
      },
    );
    assert.throws(() => assertSameTree(ta, tb, { maxLines: 1 }), /… and 1 more/);
    assertSameTree(ta, ta);
  });
});
