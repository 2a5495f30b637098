import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, lchown, link, lstat, mkdir, readdir, readFile, readlink, symlink, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { MetadataStore } from '../../src/snapshotter/metadata.js';
import { isMountPoint, mountAll, unmountAll } from '../../src/snapshotter/mount.js';
import { openSnapshotter, type Snapshotter } from '../../src/snapshotter/index.js';
import { TempDirs } from '../helpers/tmp.js';
import { mountLoopBtrfs } from '../helpers/btrfs.js';

const run = promisify(execFile);
const tmp = new TempDirs();
const mounted: string[] = [];
after(async () => {
  for (const target of mounted.reverse()) await unmountAll(target, true).catch(() => {});
  await tmp.cleanup();
});

const isRoot = process.getuid?.() === 0;

async function open(): Promise<Snapshotter> {
  return openSnapshotter('native', await tmp.make('snap-native'));
}

interface EntryFacts {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  size: number;
  content?: string;
  target?: string;
  xattrs: string;
  /** Index of the first path sharing this inode (hardlink group), by sorted path order. */
  group: string;
}

/** Every entry of a tree with the facts a copy must keep, hardlink groups named by their first path. */
async function describeTree(root: string): Promise<Record<string, EntryFacts>> {
  const out: Record<string, EntryFacts> = {};
  const groups = new Map<number, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const rel = relative(root, path);
      const st = await lstat(path);
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : 'file';
      if (!groups.has(st.ino)) groups.set(st.ino, rel);
      const { stdout } = await run('getfattr', ['-h', '-d', '-m', '-', '--absolute-names', path]).catch(() => ({ stdout: '' }));
      out[rel] = {
        type,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtimeMs: st.mtimeMs,
        size: type === 'dir' ? 0 : st.size,
        xattrs: stdout.split('\n').filter((l) => l !== '' && !l.startsWith('#')).sort().join('\n'),
        group: groups.get(st.ino)!,
      };
      if (type === 'file') out[rel].content = await readFile(path, 'utf8');
      if (type === 'symlink') out[rel].target = await readlink(path);
      if (type === 'dir') await walk(path);
    }
  };
  await walk(root);
  return out;
}

describe('native', () => {
  test('a fresh root is an empty 0755 directory, mounted as a rw bind; views are ro binds', async () => {
    const s = await open();
    const mounts = await s.prepare('a');
    const dir = await s.applyDir('a');
    assert.deepEqual(mounts, [{ type: 'bind', source: dir, options: ['rbind', 'rw'] }]);
    assert.equal((await lstat(dir)).mode & 0o7777, 0o755);
    assert.deepEqual(await readdir(dir), []);
    await s.commit('c', 'a');
    const view = await s.view('v', 'c');
    assert.equal(view.length, 1);
    assert.equal(view[0]!.type, 'bind');
    assert.deepEqual(view[0]!.options, ['rbind', 'ro']);
    assert.notEqual(view[0]!.source, dir, 'a view is its own copy');
    assert.equal(s.applyMode, 'full');
    assert.equal(s.capabilities.rebase, false);
  });

  test('prepare copies the parent: content, modes incl. setuid, owners, times, symlinks, fifos, xattrs, hardlink groups', { skip: isRoot ? false : 'needs root for chown and trusted xattrs' }, async () => {
    const s = await open();
    await s.prepare('base-rw');
    const dir = await s.applyDir('base-rw');
    await mkdir(join(dir, 'bin'));
    await writeFile(join(dir, 'bin', 'su'), '#!/bin/sh\n');
    await chmod(join(dir, 'bin', 'su'), 0o4755);
    await writeFile(join(dir, 'bin', 'tool'), 'tool');
    await link(join(dir, 'bin', 'tool'), join(dir, 'bin', 'tool-alias'));
    await mkdir(join(dir, 'other'));
    await link(join(dir, 'bin', 'tool'), join(dir, 'other', 'tool-3'));
    await writeFile(join(dir, 'owned'), 'o');
    await lchown(join(dir, 'owned'), 1234, 5678);
    await mkdir(join(dir, 'sticky'), { mode: 0o755 });
    await chmod(join(dir, 'sticky'), 0o1777);
    await lchown(join(dir, 'sticky'), 42, 43);
    await symlink('../bin/su', join(dir, 'other', 'link'));
    await lchown(join(dir, 'other', 'link'), 7, 8);
    await run('mkfifo', [join(dir, 'fifo')]);
    await run('setfattr', ['-n', 'user.note', '-v', 'hello', join(dir, 'owned')]);
    await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(dir, 'sticky')]);
    await run('setfattr', ['-n', 'security.capability', '-v', '0x0100000200200000000000000000000000000000', join(dir, 'bin', 'tool')]);
    await utimes(join(dir, 'owned'), new Date('2001-02-03T04:05:06.789Z'), new Date('2001-02-03T04:05:06.789Z'));
    await s.commit('base', 'base-rw');

    await s.prepare('child', 'base');
    const copy = await s.applyDir('child');
    assert.notEqual(copy, dir);
    const want = await describeTree(dir);
    const got = await describeTree(copy);
    assert.deepEqual(got, want);
    assert.equal(got['bin/tool-alias']!.group, 'bin/tool');
    assert.equal(got['other/tool-3']!.group, 'bin/tool');
    assert.match(got['owned']!.xattrs, /user\.note="hello"/);
    assert.match(got['sticky']!.xattrs, /trusted\.overlay\.opaque="y"/);
    assert.match(got['bin/tool']!.xattrs, /security\.capability=/);
    assert.equal(got['bin/su']!.mode, 0o4755);

    // The copy is independent: changing it leaves the committed parent alone.
    await writeFile(join(copy, 'owned'), 'changed');
    assert.equal(await readFile(join(dir, 'owned'), 'utf8'), 'o');
    assert.equal((await lstat(join(copy, 'bin', 'tool'))).ino === (await lstat(join(dir, 'bin', 'tool'))).ino, false);
  });

  test('round trip through real mounts, deletions included; a view is read-only', { skip: isRoot ? false : 'needs root to mount' }, async () => {
    const s = await open();
    const mnt = await tmp.make('snap-native-mnt');
    mounted.push(mnt);
    await mountAll(await s.prepare('l1'), mnt);
    await writeFile(join(mnt, 'keep'), 'k');
    await writeFile(join(mnt, 'drop'), 'd');
    await unmountAll(mnt);
    await s.commit('L1', 'l1');
    await mountAll(await s.prepare('l2', 'L1'), mnt);
    assert.deepEqual((await readdir(mnt)).sort(), ['drop', 'keep']);
    await writeFile(join(mnt, 'keep'), 'k2');
    await import('node:fs/promises').then((fs) => fs.rm(join(mnt, 'drop')));
    await unmountAll(mnt);
    await s.commit('L2', 'l2');
    await mountAll(await s.view('v', 'L2'), mnt);
    assert.ok(await isMountPoint(mnt));
    assert.deepEqual(await readdir(mnt), ['keep']);
    assert.equal(await readFile(join(mnt, 'keep'), 'utf8'), 'k2');
    await assert.rejects(writeFile(join(mnt, 'x'), 'x'), { code: 'EROFS' });
    await unmountAll(mnt);
    assert.equal(await isMountPoint(mnt), false);
  });

  test('usage counts the whole tree; remove then cleanup frees the disk', async () => {
    const s = await open();
    await s.prepare('a');
    const dir = await s.applyDir('a');
    await writeFile(join(dir, 'f'), Buffer.alloc(128 * 1024, 7));
    await s.commit('A', 'a');
    await s.prepare('b', 'A');
    const u = await s.usage('b');
    assert.equal(u.inodes, 2);
    assert.ok(u.size >= 128 * 1024);
    const id = (await new MetadataStore(s.root).read()).snapshots['b']!.id;
    await s.remove('b');
    await s.cleanup();
    assert.ok(!(await readdir(join(s.root, 'snapshots'))).includes(String(id)));
    assert.deepEqual(await readdir(join(s.root, 'removal')), []);
  });

  test('on a filesystem with reflinks (btrfs on a loop device), prepare shares the parent’s extents instead of copying them', async (t) => {
    const fs = await mountLoopBtrfs(512);
    if (typeof fs === 'string') return t.skip(`LOUD SKIP: ${fs}`);
    t.after(() => fs.unmount());
    const mnt = fs.mnt;
    const used = async () => {
      await run('sync', ['-f', mnt]);
      return Number((await run('df', ['--output=used', '-B1', mnt])).stdout.split('\n')[1]);
    };
    const s = await openSnapshotter('native', join(mnt, 'root'));
    await s.prepare('a');
    const data = Buffer.alloc(64 << 20);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    await writeFile(join(await s.applyDir('a'), 'big'), data);
    await s.commit('A', 'a');
    const before = await used();
    await s.prepare('b', 'A');
    const grown = (await used()) - before;
    assert.ok(grown < 8 << 20, `prepare on btrfs used ${grown} more bytes for a 64 MiB parent file: copied, not reflinked`);
    assert.ok((await readFile(join(await s.applyDir('b'), 'big'))).equals(data));
  });
});

