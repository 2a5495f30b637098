import assert from 'node:assert/strict';
import { closeSync, writeSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadNative, type EntryMeta, type NativeBinding } from '../../src/sys/native.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());

let native: NativeBinding;
before(() => {
  native = loadNative();
});

/** A root dir and its O_PATH fd, closed after the file. */
async function root(): Promise<{ dir: string; fd: number }> {
  const dir = await tmp.make('sys-apply');
  const fd = native.openRoot(dir);
  after(() => native.closeFd(fd));
  return { dir, fd };
}

function meta(over: Partial<EntryMeta> = {}): EntryMeta {
  return { mode: 0o644, uid: 1234, gid: 5678, mtimeSec: 1_600_000_000, mtimeNsec: 987_654_321, ...over };
}

const CAP_NET_BIND = Buffer.from('0100000200040000000000000000000000000000', 'hex'); // VFS_CAP_REVISION_2, cap_net_bind_service

describe('applyBatch: every op with its metadata', () => {
  test('file: content, owner, mode, nanosecond mtime, atime, xattrs incl. security.capability', async () => {
    const { dir, fd } = await root();
    await native.applyBatch(fd, [
      {
        op: 'file',
        path: 'bin/ping',
        data: Buffer.from('#!/bin/true\n'),
        meta: meta({ mode: 0o755, atimeSec: 1_500_000_000, atimeNsec: 5, xattrs: { 'security.capability': CAP_NET_BIND, 'user.note': Buffer.from([0, 1, 2, 255]) } }),
      },
    ]);
    const st = await lstat(join(dir, 'bin/ping'), { bigint: true });
    assert.equal(await readFile(join(dir, 'bin/ping'), 'utf8'), '#!/bin/true\n');
    assert.equal(st.mode & 0o7777n, 0o755n);
    assert.equal(st.uid, 1234n);
    assert.equal(st.gid, 5678n);
    assert.equal(st.mtimeNs, 1_600_000_000_987_654_321n);
    assert.equal(st.atimeNs, 1_500_000_000_000_000_005n);
    const x = native.lgetxattrs(join(dir, 'bin/ping'));
    assert.deepEqual(x['security.capability'], CAP_NET_BIND);
    assert.deepEqual(x['user.note'], Buffer.from([0, 1, 2, 255]));
    // missing parent was created as a plain directory
    assert.ok((await lstat(join(dir, 'bin'))).isDirectory());
  });

  test('setuid, setgid and sticky survive the chown (mode is set after the owner)', async () => {
    const { dir, fd } = await root();
    await native.applyBatch(fd, [
      { op: 'file', path: 'su', data: Buffer.from('x'), meta: meta({ mode: 0o4755 }) },
      { op: 'file', path: 'sg', data: Buffer.from('x'), meta: meta({ mode: 0o2711 }) },
      { op: 'mkdir', path: 'tmp', meta: meta({ mode: 0o1777 }) },
      { op: 'mkdir', path: 'shared', meta: meta({ mode: 0o2775 }) },
    ]);
    assert.equal((await lstat(join(dir, 'su'))).mode & 0o7777, 0o4755);
    assert.equal((await lstat(join(dir, 'sg'))).mode & 0o7777, 0o2711);
    assert.equal((await lstat(join(dir, 'tmp'))).mode & 0o7777, 0o1777);
    assert.equal((await lstat(join(dir, 'shared'))).mode & 0o7777, 0o2775);
    assert.equal((await lstat(join(dir, 'su'))).uid, 1234);
  });

  test('symlink: target stored verbatim, owner, mtime and a trusted xattr on the link itself', async () => {
    const { dir, fd } = await root();
    await native.applyBatch(fd, [
      { op: 'symlink', path: 'etc/alt', target: '/usr/bin/../../etc/passwd', meta: meta({ xattrs: { 'trusted.tag': Buffer.from('v') } }) },
    ]);
    const st = await lstat(join(dir, 'etc/alt'), { bigint: true });
    assert.ok(st.isSymbolicLink());
    assert.equal(await readlink(join(dir, 'etc/alt')), '/usr/bin/../../etc/passwd');
    assert.equal(st.uid, 1234n);
    assert.equal(st.mtimeNs, 1_600_000_000_987_654_321n);
    assert.deepEqual(native.lgetxattrs(join(dir, 'etc/alt')), { 'trusted.tag': Buffer.from('v') });
  });

  test('mknod: char device, block device, fifo, and a char 0/0 whiteout', async () => {
    const { dir, fd } = await root();
    await native.applyBatch(fd, [
      { op: 'mknod', path: 'dev/null', kind: 'char', major: 1, minor: 3, meta: meta({ mode: 0o666, uid: 0, gid: 0 }) },
      { op: 'mknod', path: 'dev/loop9', kind: 'block', major: 7, minor: 9, meta: meta({ mode: 0o660 }) },
      { op: 'mknod', path: 'run/fifo', kind: 'fifo', major: 0, minor: 0, meta: meta({ mode: 0o600 }) },
      { op: 'mknod', path: 'gone', kind: 'char', major: 0, minor: 0, meta: meta({ mode: 0, uid: 0, gid: 0 }) },
    ]);
    const nul = await lstat(join(dir, 'dev/null'));
    assert.ok(nul.isCharacterDevice());
    assert.equal(nul.rdev, (1 << 8) | 3);
    assert.equal(nul.mode & 0o7777, 0o666);
    const loop = await lstat(join(dir, 'dev/loop9'));
    assert.ok(loop.isBlockDevice());
    assert.equal(loop.rdev, (7 << 8) | 9);
    assert.equal(loop.uid, 1234);
    assert.ok((await lstat(join(dir, 'run/fifo'))).isFIFO());
    const wh = await lstat(join(dir, 'gone'));
    assert.ok(wh.isCharacterDevice());
    assert.equal(wh.rdev, 0);
  });

  test('hardlink: same inode; linking a symlink links the link, not its target', async () => {
    const { dir, fd } = await root();
    await native.applyBatch(fd, [
      { op: 'file', path: 'a/orig', data: Buffer.from('same'), meta: meta() },
      { op: 'hardlink', path: 'b/link', target: 'a/orig' },
      { op: 'symlink', path: 'a/sl', target: 'orig', meta: meta() },
      { op: 'hardlink', path: 'b/sl-link', target: 'a/sl' },
      { op: 'hardlink', path: 'a/orig', target: 'a/orig' }, // onto itself: nothing to do
    ]);
    const a = await lstat(join(dir, 'a/orig'));
    const b = await lstat(join(dir, 'b/link'));
    assert.equal(a.ino, b.ino);
    assert.equal(a.nlink, 2);
    const sl = await lstat(join(dir, 'b/sl-link'));
    assert.ok(sl.isSymbolicLink());
    assert.equal(sl.ino, (await lstat(join(dir, 'a/sl'))).ino);
  });

  test('mkdir keeps an existing directory and its children, updating metadata; times set afterwards', async () => {
    const { dir, fd } = await root();
    await native.applyBatch(fd, [
      { op: 'mkdir', path: 'd', meta: meta({ mode: 0o700 }) },
      { op: 'file', path: 'd/child', data: Buffer.from('c'), meta: meta() },
      { op: 'mkdir', path: 'd', meta: meta({ mode: 0o751, uid: 7, gid: 8, xattrs: { 'user.dir': Buffer.from('1') } }) },
      { op: 'times', path: 'd', meta: meta({ mtimeSec: 1_234_567_890, mtimeNsec: 1 }) },
    ]);
    const st = await lstat(join(dir, 'd'), { bigint: true });
    assert.equal(st.mode & 0o7777n, 0o751n);
    assert.equal(st.uid, 7n);
    assert.equal(st.mtimeNs, 1_234_567_890_000_000_001n);
    assert.deepEqual(await readdir(join(dir, 'd')), ['child']);
    assert.deepEqual(native.lgetxattrs(join(dir, 'd'))['user.dir'], Buffer.from('1'));
  });

  test('the root itself: mkdir "." and times "." update the root; setxattr by op', async () => {
    const { dir, fd } = await root();
    await native.applyBatch(fd, [
      { op: 'mkdir', path: '.', meta: meta({ mode: 0o755, uid: 0, gid: 0 }) },
      { op: 'file', path: 'f', data: Buffer.alloc(0), meta: meta() },
      { op: 'setxattr', path: 'f', name: 'trusted.overlay.opaque', value: Buffer.from('y') },
      { op: 'times', path: './', meta: meta({ mtimeSec: 42, mtimeNsec: 0 }) },
    ]);
    assert.equal((await stat(dir)).mtimeMs, 42_000);
    assert.equal((await stat(dir)).mode & 0o7777, 0o755);
    assert.deepEqual(native.lgetxattrs(join(dir, 'f'))['trusted.overlay.opaque'], Buffer.from('y'));
    assert.equal((await stat(join(dir, 'f'))).size, 0);
  });

  test('remove (recursive, missing is fine) and removeChildren', async () => {
    const { dir, fd } = await root();
    await mkdir(join(dir, 'tree/deep/er'), { recursive: true });
    await writeFile(join(dir, 'tree/deep/er/f'), 'x');
    await symlink('/', join(dir, 'tree/rootlink'));
    await mkdir(join(dir, 'opq/sub'), { recursive: true });
    await writeFile(join(dir, 'opq/a'), 'a');
    await native.applyBatch(fd, [
      { op: 'remove', path: 'tree' },
      { op: 'remove', path: 'not/there/at/all' },
      { op: 'removeChildren', path: 'opq' },
      { op: 'removeChildren', path: 'missing' },
    ]);
    await assert.rejects(lstat(join(dir, 'tree')), { code: 'ENOENT' });
    assert.deepEqual(await readdir(join(dir, 'opq')), []);
  });
});

describe('applyBatch: replacement rules (tar semantics)', () => {
  test('file over a directory tree, directory over a file, symlink over a file, file over a symlink', async () => {
    const { dir, fd } = await root();
    await mkdir(join(dir, 'was-dir/sub'), { recursive: true });
    await writeFile(join(dir, 'was-dir/sub/x'), 'x');
    await writeFile(join(dir, 'was-file'), 'x');
    await writeFile(join(dir, 'to-link'), 'x');
    const outside = await tmp.make('sys-apply-outside');
    await writeFile(join(outside, 'target'), 'untouched');
    await symlink(join(outside, 'target'), join(dir, 'link'));
    await native.applyBatch(fd, [
      { op: 'file', path: 'was-dir', data: Buffer.from('now a file'), meta: meta() },
      { op: 'mkdir', path: 'was-file', meta: meta({ mode: 0o755 }) },
      { op: 'symlink', path: 'to-link', target: 'elsewhere', meta: meta() },
      { op: 'file', path: 'link', data: Buffer.from('replaced the link'), meta: meta() },
      { op: 'mknod', path: 'was-file2', kind: 'fifo', major: 0, minor: 0, meta: meta() },
    ]);
    assert.equal(await readFile(join(dir, 'was-dir'), 'utf8'), 'now a file');
    assert.ok((await lstat(join(dir, 'was-file'))).isDirectory());
    assert.equal(await readlink(join(dir, 'to-link')), 'elsewhere');
    assert.ok((await lstat(join(dir, 'link'))).isFile());
    assert.equal(await readFile(join(dir, 'link'), 'utf8'), 'replaced the link');
    assert.equal(await readFile(join(outside, 'target'), 'utf8'), 'untouched');
  });

  test('an op after a directory was removed does not reuse the stale cached parent', async () => {
    const { dir, fd } = await root();
    await native.applyBatch(fd, [
      { op: 'file', path: 'p/q/one', data: Buffer.from('1'), meta: meta() },
      { op: 'remove', path: 'p' },
      { op: 'file', path: 'p/q/two', data: Buffer.from('2'), meta: meta() },
    ]);
    assert.deepEqual(await readdir(join(dir, 'p/q')), ['two']);
  });
});

describe('createFile / finishFile (large files written from JS)', () => {
  test('creates through the root, replaces a symlink instead of following it, sets metadata on the fd', async () => {
    const { dir, fd } = await root();
    const outside = await tmp.make('sys-apply-outside');
    await writeFile(join(outside, 'victim'), 'untouched');
    await mkdir(join(dir, 'big'));
    await symlink(join(outside, 'victim'), join(dir, 'big/blob'));
    const out = native.createFile(fd, 'big/blob', 0o644);
    try {
      writeSync(out, Buffer.alloc(3 << 20, 7));
      native.finishFile(out, meta({ mode: 0o4750, xattrs: { 'security.capability': CAP_NET_BIND } }), 'big/blob');
    } finally {
      closeSync(out);
    }
    const st = await lstat(join(dir, 'big/blob'), { bigint: true });
    assert.ok(st.isFile());
    assert.equal(st.size, BigInt(3 << 20));
    assert.equal(st.mode & 0o7777n, 0o4750n);
    assert.equal(st.mtimeNs, 1_600_000_000_987_654_321n);
    assert.deepEqual(native.lgetxattrs(join(dir, 'big/blob'))['security.capability'], CAP_NET_BIND);
    assert.equal(await readFile(join(outside, 'victim'), 'utf8'), 'untouched');
  });
});

describe('errors', () => {
  test('a failing op rejects with FsApplyError naming path, errno, syscall and op index; earlier ops stay applied', async () => {
    const { dir, fd } = await root();
    await writeFile(join(dir, 'plain'), 'x');
    await assert.rejects(
      native.applyBatch(fd, [
        { op: 'file', path: 'ok', data: Buffer.from('1'), meta: meta() },
        { op: 'file', path: 'plain/under-a-file', data: Buffer.from('1'), meta: meta() },
      ]),
      (err: any) => {
        assert.equal(err.code, 'ERR_APPLY');
        assert.equal(err.path, 'plain/under-a-file');
        assert.equal(err.errnoName, 'ENOTDIR');
        assert.equal(err.opIndex, 1);
        assert.match(err.message, /plain\/under-a-file/);
        return true;
      },
    );
    assert.equal(await readFile(join(dir, 'ok'), 'utf8'), '1');
  });

  test('bad metadata is refused before anything is applied', async () => {
    const { dir, fd } = await root();
    await assert.rejects(native.applyBatch(fd, [{ op: 'mkdir', path: 'x', meta: meta({ uid: -1 }) }]), { code: 'ERR_INVALID_ARGUMENT', message: /meta\.uid/ });
    await assert.rejects(lstat(join(dir, 'x')), { code: 'ENOENT' });
  });
});
