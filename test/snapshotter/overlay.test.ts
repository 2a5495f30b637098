import assert from 'node:assert/strict';
import { link, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MetadataStore } from '../../src/snapshotter/metadata.js';
import { isMountPoint, mountAll, parseOverlayOptions, unmountAll } from '../../src/snapshotter/mount.js';
import { kernelHasOverlay, overlayFeatures } from '../../src/snapshotter/overlay/kernel.js';
import { OverlaySnapshotter } from '../../src/snapshotter/overlay/overlay.js';
import { defaultSnapshotter, openSnapshotter } from '../../src/snapshotter/index.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
const mounted: string[] = [];
after(async () => {
  for (const target of mounted.reverse()) await unmountAll(target, true).catch(() => {});
  await tmp.cleanup();
});

const canMount = process.getuid?.() === 0 && kernelHasOverlay();
const noMount = canMount ? false : 'needs root and overlayfs in /proc/filesystems to mount';

async function open(): Promise<OverlaySnapshotter> {
  return (await openSnapshotter('overlay', await tmp.make('snap-ovl'))) as OverlaySnapshotter;
}

async function idOf(s: OverlaySnapshotter, key: string): Promise<number> {
  return (await new MetadataStore(s.root).read()).snapshots[key]!.id;
}

async function target(): Promise<string> {
  const dir = await tmp.make('snap-ovl-mnt');
  mounted.push(dir);
  return dir;
}

/** Commits a layer whose files are written straight into its upper directory. */
async function layer(s: OverlaySnapshotter, name: string, parent: string | undefined, files: Record<string, string>): Promise<void> {
  const key = `${name}-active`;
  await s.prepare(key, parent);
  const dir = await s.applyDir(key);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  await s.commit(name, key);
}

describe('overlay: mounts', () => {
  test('shapes: bind for a root, overlay newest-first with upper and work, ro bind for a one-parent view, lowerdir-only overlay for more', async () => {
    const s = await open();
    const { indexOff, userxattr } = overlayFeatures();
    const flags = [...(indexOff ? ['index=off'] : []), ...(userxattr ? ['userxattr'] : [])];

    const rootMounts = await s.prepare('root');
    const rootId = await idOf(s, 'root');
    assert.deepEqual(rootMounts, [{ type: 'bind', source: s.fsDir(rootId), options: ['rbind', 'rw'] }]);
    assert.equal(await s.applyDir('root'), s.fsDir(rootId));
    assert.equal((await stat(s.fsDir(rootId))).mode & 0o7777, 0o755);
    await s.commit('A', 'root');
    await layer(s, 'B', 'A', {});
    const a = await idOf(s, 'A');
    const b = await idOf(s, 'B');
    assert.equal(a, rootId, 'commit keeps the directory');

    const active = await s.prepare('top', 'B');
    const top = await idOf(s, 'top');
    assert.deepEqual(active, [
      {
        type: 'overlay',
        source: 'overlay',
        options: [...flags, `lowerdir=${s.fsDir(b)}:${s.fsDir(a)}`, `upperdir=${s.fsDir(top)}`, `workdir=${join(s.root, 'snapshots', String(top), 'work')}`],
      },
    ]);
    assert.deepEqual(await s.mounts('top'), active);
    assert.equal(await s.applyDir('top'), s.fsDir(top));

    assert.deepEqual(await s.view('v1', 'A'), [{ type: 'bind', source: s.fsDir(a), options: ['rbind', 'ro'] }]);
    assert.deepEqual(await s.view('v2', 'B'), [{ type: 'overlay', source: 'overlay', options: [...flags, `lowerdir=${s.fsDir(b)}:${s.fsDir(a)}`] }]);
    assert.deepEqual(await s.mounts('v2'), await s.view('v3', 'B'));
    await assert.rejects(s.applyDir('v2'), { code: 'ERR_FAILED_PRECONDITION' });
    await assert.rejects(s.applyDir('B'), { code: 'ERR_FAILED_PRECONDITION' });
    assert.equal(s.applyMode, 'overlay');
    assert.equal(s.capabilities.rebase, true);
  });

  test('lowerdir lists split back into one path per layer, escapes included', () => {
    const spec = parseOverlayOptions(['index=off', 'lowerdir=/a/b:/c\\:d:/e\\\\f', 'upperdir=/u', 'workdir=/w', 'ro']);
    assert.deepEqual(spec, { lowers: ['/a/b', '/c:d', '/e\\f'], upper: '/u', work: '/w', flags: ['index=off', 'ro'] });
    assert.throws(() => parseOverlayOptions(['lowerdir=/a::/b']), { code: 'ERR_INVALID_ARGUMENT' });
  });

  test('round trip through real mounts: prepare, write, unmount, commit, view; whiteouts hide; views are read-only', { skip: noMount }, async () => {
    const s = await open();
    const mnt = await target();
    await mountAll(await s.prepare('base-rw'), mnt);
    assert.ok(await isMountPoint(mnt));
    await mkdir(join(mnt, 'etc'));
    await writeFile(join(mnt, 'etc', 'hostname'), 'base\n');
    await writeFile(join(mnt, 'gone'), 'x');
    await unmountAll(mnt);
    assert.equal(await isMountPoint(mnt), false);
    await s.commit('base', 'base-rw');

    await mountAll(await s.prepare('app-rw', 'base'), mnt);
    assert.equal(await readFile(join(mnt, 'etc', 'hostname'), 'utf8'), 'base\n');
    await writeFile(join(mnt, 'etc', 'hostname'), 'app\n');
    await rm(join(mnt, 'gone'));
    await writeFile(join(mnt, 'new'), 'n');
    await unmountAll(mnt);
    await s.commit('app', 'app-rw');

    // One parent: a read-only bind of base as it was.
    await mountAll(await s.view('see-base', 'base'), mnt);
    assert.equal(await readFile(join(mnt, 'etc', 'hostname'), 'utf8'), 'base\n');
    assert.deepEqual((await readdir(mnt)).sort(), ['etc', 'gone']);
    await assert.rejects(writeFile(join(mnt, 'w'), 'x'), { code: 'EROFS' });
    await unmountAll(mnt);

    // Two parents: the overlay shows app over base, with the deletion.
    await mountAll(await s.view('see-app', 'app'), mnt);
    assert.equal(await readFile(join(mnt, 'etc', 'hostname'), 'utf8'), 'app\n');
    assert.deepEqual((await readdir(mnt)).sort(), ['etc', 'new']);
    await assert.rejects(writeFile(join(mnt, 'w'), 'x'), { code: 'EROFS' });
    await unmountAll(mnt);

    await assert.rejects(s.remove('base'), { code: 'ERR_FAILED_PRECONDITION' });
    for (const key of ['see-app', 'see-base', 'app', 'base']) await s.remove(key);
    assert.deepEqual(await readdir(join(s.root, 'snapshots')), []);
  });

  test('rebase: a layer extracted without parent and committed onto one stacks in order', { skip: noMount }, async () => {
    const s = await open();
    await layer(s, 'L1', undefined, { 'f': 'one', 'only1': '1' });
    // Extracted independently, then committed onto L1.
    await s.prepare('l2');
    await writeFile(join(await s.applyDir('l2'), 'f'), 'two');
    await s.commit('L2', 'l2', { parent: 'L1' });
    const mnt = await target();
    await mountAll(await s.view('v', 'L2'), mnt);
    assert.equal(await readFile(join(mnt, 'f'), 'utf8'), 'two');
    assert.equal(await readFile(join(mnt, 'only1'), 'utf8'), '1');
    await unmountAll(mnt);
  });

  test('usage: blocks and inodes of the snapshot\'s own files, hardlinks once', async () => {
    const s = await open();
    await s.prepare('a');
    const empty = await s.usage('a');
    assert.equal(empty.inodes, 1);
    const dir = await s.applyDir('a');
    await writeFile(join(dir, 'big'), Buffer.alloc(256 * 1024, 1));
    await link(join(dir, 'big'), join(dir, 'big-link'));
    await mkdir(join(dir, 'd'));
    await writeFile(join(dir, 'd', 'small'), 'x');
    const u = await s.usage('a');
    assert.equal(u.inodes, 4);
    assert.ok(u.size >= 256 * 1024 + empty.size, `size ${u.size}`);
    assert.ok(u.size < 2 * 256 * 1024, `hardlink counted once: ${u.size}`);
    await s.commit('c', 'a');
    assert.deepEqual(await s.usage('c'), u);
  });

  test('a chain of 500 layers mounts whole through the new mount API', { skip: noMount, timeout: 60_000 }, async (t) => {
    const s = await open();
    let parent: string | undefined;
    for (let i = 0; i < 500; i++) {
      const files: Record<string, string> = { top: String(i) };
      if (i % 50 === 0) files[`f${i}`] = String(i);
      await layer(s, `L${i}`, parent, files);
      parent = `L${i}`;
    }
    const mnt = await target();
    const mounts = await s.prepare('rw', parent);
    assert.ok(mounts[0]!.options.join(',').length > 4096, 'the options exceed one page');
    await mountAll(mounts, mnt);
    assert.equal(await readFile(join(mnt, 'top'), 'utf8'), '499');
    for (let i = 0; i < 500; i += 50) assert.equal(await readFile(join(mnt, `f${i}`), 'utf8'), String(i));
    await unmountAll(mnt);
    // One more layer is past the kernel's limit: a clear error, no mount.
    await layer(s, 'L500', parent, {});
    await assert.rejects(
      async () => mountAll(await s.prepare('too-deep', 'L500'), mnt),
      /at most 500/,
    );
    assert.equal(await isMountPoint(mnt), false);
  });
});

describe('defaultSnapshotter', () => {
  test('overlay where the kernel has it and we may mount (probed in a directory), else native', async () => {
    const probe = await tmp.make('snap-default');
    const chosen = await defaultSnapshotter(probe);
    assert.equal(chosen, canMount ? 'overlay' : 'native');
    assert.deepEqual(await readdir(probe), [], 'the probe cleans up after itself');
  });
});
