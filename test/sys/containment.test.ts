import assert from 'node:assert/strict';
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { loadNative, type EntryMeta, type FsOp, type NativeBinding } from '../../src/sys/native.js';
import { TempDirs } from '../helpers/tmp.js';

/**
 * Hostile paths: every op is refused with ERR_UNSAFE_PATH naming the entry, and the canary
 * directory outside the root (which symlinks in the root point at) stays exactly as it was.
 */
const tmp = new TempDirs();
after(() => tmp.cleanup());

let native: NativeBinding;
let dir: string;
let fd: number;
let canary: string;

const meta: EntryMeta = { mode: 0o644, uid: 0, gid: 0, mtimeSec: 1, mtimeNsec: 0 };

before(async () => {
  native = loadNative();
  const base = await tmp.make('sys-contain');
  dir = join(base, 'root');
  canary = join(base, 'canary');
  await mkdir(join(canary, 'sub'), { recursive: true });
  await writeFile(join(canary, 'secret'), 'secret');
  await mkdir(join(dir, 'real/inner'), { recursive: true });
  await writeFile(join(dir, 'real/file'), 'inside');
  await symlink(canary, join(dir, 'out')); // symlinked parent pointing outside
  await symlink('../canary', join(dir, 'out-rel'));
  await symlink('real', join(dir, 'in')); // symlinked parent pointing inside
  await symlink('/proc/self/root', join(dir, 'magic'));
  await symlink(join(canary, 'secret'), join(dir, 'real/to-secret'));
  fd = native.openRoot(dir);
});
after(() => native.closeFd(fd));

afterEach(async () => {
  assert.deepEqual((await readdir(canary)).sort(), ['secret', 'sub'], 'nothing was created outside the root');
  assert.deepEqual(await readdir(join(canary, 'sub')), []);
  assert.equal(await readFile(join(canary, 'secret'), 'utf8'), 'secret');
  const st = await lstat(join(canary, 'secret'));
  assert.equal(st.nlink, 1, 'no hardlink to the canary was made');
  assert.equal(st.mode & 0o7777, 0o644);
});

async function refused(op: FsOp, reason: RegExp): Promise<void> {
  await assert.rejects(native.applyBatch(fd, [op]), (err: any) => {
    assert.equal(err.code, 'ERR_UNSAFE_PATH', `${op.op} ${op.path}: ${err.message}`);
    assert.equal(err.path, op.path);
    assert.ok(err.message.includes(JSON.stringify(op.path)), err.message);
    assert.match(err.message, reason);
    return true;
  });
}

const symlinked = /symlink/;
const file = (path: string): FsOp => ({ op: 'file', path, meta, data: Buffer.from('pwned') });

describe('containment', () => {
  test('".." and absolute paths are refused before any syscall', async () => {
    await refused(file('../escape'), /"\.\."/);
    await refused(file('real/../../escape'), /"\.\."/);
    await refused(file('/abs/escape'), /absolute/);
    await refused({ op: 'mkdir', path: '/', meta }, /absolute/);
    await refused({ op: 'remove', path: '..' }, /"\.\."/);
    await refused(file('a\0b'), /NUL/);
    await assert.rejects(lstat(join(dir, '..', 'escape')), { code: 'ENOENT' });
  });

  test('a symlinked parent pointing outside is refused for every kind of op', async () => {
    await refused(file('out/pwned'), symlinked);
    await refused(file('out-rel/pwned'), symlinked);
    await refused({ op: 'mkdir', path: 'out/sub/deeper', meta }, symlinked);
    await refused({ op: 'symlink', path: 'out/l', target: '/', meta }, symlinked);
    await refused({ op: 'mknod', path: 'out/dev', kind: 'fifo', major: 0, minor: 0, meta }, symlinked);
    await refused({ op: 'setxattr', path: 'out/secret', name: 'user.x', value: Buffer.from('1') }, symlinked);
    await refused({ op: 'times', path: 'out/secret', meta }, symlinked);
    await refused({ op: 'hardlink', path: 'out/h', target: 'real/file' }, symlinked);
    await refused(file('magic/tmp/pwned'), symlinked);
  });

  test('a symlinked parent pointing inside the root is refused too (never followed)', async () => {
    await refused(file('in/via-link'), symlinked);
    await assert.rejects(lstat(join(dir, 'real/via-link')), { code: 'ENOENT' });
  });

  test('remove and removeChildren through a symlinked parent are refused', async () => {
    await refused({ op: 'remove', path: 'out/secret' }, symlinked);
    await refused({ op: 'remove', path: 'out/sub' }, symlinked);
    await refused({ op: 'removeChildren', path: 'out/sub' }, symlinked);
  });

  test('remove / removeChildren of a symlink act on the link, never on what it points at', async () => {
    await native.applyBatch(fd, [{ op: 'removeChildren', path: 'out' }]); // a symlink: no children to remove
    await symlink(canary, join(dir, 'doomed'));
    await native.applyBatch(fd, [{ op: 'remove', path: 'doomed' }]);
    await assert.rejects(lstat(join(dir, 'doomed')), { code: 'ENOENT' });
  });

  test('hardlinks whose target is outside, under a symlink, or climbs out are refused', async () => {
    await refused({ op: 'hardlink', path: 'h1', target: 'out/secret' }, symlinked);
    await refused({ op: 'hardlink', path: 'h2', target: '../canary/secret' }, /"\.\."/);
    await refused({ op: 'hardlink', path: 'h3', target: '/etc/passwd' }, /absolute/);
    await refused({ op: 'hardlink', path: 'h4', target: 'in/file' }, symlinked);
    // a hardlink to a symlink that points outside links the symlink itself
    await native.applyBatch(fd, [{ op: 'hardlink', path: 'h5', target: 'real/to-secret' }]);
    assert.ok((await lstat(join(dir, 'h5'))).isSymbolicLink());
  });

  test('a symlink as the final component is replaced, never written through', async () => {
    await symlink(join(canary, 'secret'), join(dir, 'final'));
    await native.applyBatch(fd, [file('final')]);
    assert.ok((await lstat(join(dir, 'final'))).isFile());
    await symlink(join(canary, 'sub'), join(dir, 'final-dir'));
    await native.applyBatch(fd, [{ op: 'mkdir', path: 'final-dir', meta: { ...meta, mode: 0o777 } }]);
    assert.ok((await lstat(join(dir, 'final-dir'))).isDirectory());
    await symlink(join(canary, 'secret'), join(dir, 'final-node'));
    await native.applyBatch(fd, [{ op: 'mknod', path: 'final-node', kind: 'fifo', major: 0, minor: 0, meta }]);
    assert.ok((await lstat(join(dir, 'final-node'))).isFIFO());
    // times / setxattr on a final symlink act on the link itself
    await native.applyBatch(fd, [
      { op: 'times', path: 'real/to-secret', meta: { ...meta, mtimeSec: 99 } },
      { op: 'setxattr', path: 'real/to-secret', name: 'trusted.t', value: Buffer.from('1') },
    ]);
    assert.equal((await lstat(join(dir, 'real/to-secret'))).mtimeMs, 99_000);
    assert.deepEqual(native.lgetxattrs(join(canary, 'secret')), {});
  });

  test('createFile applies the same rules', async () => {
    for (const [path, reason] of [['out/big', symlinked], ['../big', /"\.\."/], ['/big', /absolute/], ['in/big', symlinked]] as const) {
      assert.throws(() => native.createFile(fd, path, 0o644), (err: any) => err.code === 'ERR_UNSAFE_PATH' && err.path === path && reason.test(err.message));
    }
  });

  test('the root itself cannot be replaced or removed', async () => {
    await refused({ op: 'remove', path: '.' }, /root directory/);
    await refused(file(''), /root directory/);
    await refused({ op: 'hardlink', path: 'hr', target: '.' }, /root directory/);
  });
});
