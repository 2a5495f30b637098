import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { loadNative, type NativeBinding } from '../../src/sys/native.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
const mounted: string[] = [];
let native: NativeBinding;

before(() => {
  native = loadNative();
});
after(async () => {
  for (const target of mounted.reverse()) {
    try {
      native.unmount(target, true);
    } catch {
      // already unmounted by its test
    }
  }
  await tmp.cleanup();
});

/** Mounting needs root (CAP_SYS_ADMIN); say so instead of failing. */
function canMount(t: TestContext): boolean {
  if (process.getuid?.() === 0) return true;
  t.skip('mounting needs root (CAP_SYS_ADMIN)');
  return false;
}

/** `count` lower dirs with ~90-byte paths; layer i holds f<i> and `top` = i. Returned newest first. */
async function makeLowers(base: string, count: number): Promise<string[]> {
  const lowers: string[] = [];
  for (let i = 0; i < count; i++) {
    const dir = join(base, `layer-${String(i).padStart(4, '0')}-${'l'.repeat(48)}`);
    await mkdir(dir);
    await writeFile(join(dir, `f${i}`), String(i));
    await writeFile(join(dir, 'top'), String(i));
    lowers.push(dir);
  }
  return lowers.reverse();
}

async function mountPoint(base: string): Promise<string> {
  const target = join(base, 'mnt');
  await mkdir(target);
  return target;
}

describe('overlay through the new mount API', () => {
  test('3 lowers + upper: merged content, char 0/0 whiteouts hide lower files, writes go to the upper', async (t) => {
    if (!canMount(t)) return;
    const base = await tmp.make('sys-mount');
    const [l1, l2, l3, upper, work] = ['l1', 'l2', 'l3', 'upper', 'work'].map((n) => join(base, n)) as [string, string, string, string, string];
    for (const d of [l1, l2, l3, upper, work]) await mkdir(d);
    await writeFile(join(l1, 'a'), 'from l1');
    await writeFile(join(l1, 'b'), 'from l1');
    await writeFile(join(l2, 'b'), 'from l2');
    await writeFile(join(l2, 'gone'), 'hidden by l3');
    await writeFile(join(l3, 'c'), 'from l3');
    const fd = native.openRoot(l3);
    try {
      await native.applyBatch(fd, [{ op: 'mknod', path: 'gone', kind: 'char', major: 0, minor: 0, meta: { mode: 0, uid: 0, gid: 0, mtimeSec: 0, mtimeNsec: 0 } }]);
    } finally {
      native.closeFd(fd);
    }
    const target = await mountPoint(base);
    native.mountOverlay(target, { lowers: [l3, l2, l1], upper, work, flags: ['index=off'] });
    mounted.push(target);
    assert.deepEqual((await readdir(target)).sort(), ['a', 'b', 'c']);
    assert.equal(await readFile(join(target, 'a'), 'utf8'), 'from l1');
    assert.equal(await readFile(join(target, 'b'), 'utf8'), 'from l2');
    assert.equal(await readFile(join(target, 'c'), 'utf8'), 'from l3');
    await writeFile(join(target, 'new'), 'written');
    native.unmount(target);
    assert.equal(await readFile(join(upper, 'new'), 'utf8'), 'written');
    assert.deepEqual(await readdir(target), []);
  });

  for (const count of [200, 500]) {
    test(`${count} lowers read-only (options far beyond the 4095-byte legacy limit) show every layer, newest on top`, async (t) => {
      if (!canMount(t)) return;
      const base = await tmp.make('sys-mount');
      const lowers = await makeLowers(base, count);
      assert.ok(lowers.join(':').length > 4095);
      const target = await mountPoint(base);
      native.mountOverlay(target, { lowers, flags: ['ro'] });
      mounted.push(target);
      const names = await readdir(target);
      assert.equal(names.length, count + 1);
      assert.equal(await readFile(join(target, 'top'), 'utf8'), String(count - 1));
      assert.equal(await readFile(join(target, 'f0'), 'utf8'), '0');
      await assert.rejects(writeFile(join(target, 'x'), 'x'), { code: 'EROFS' });
      native.unmount(target);
    });
  }

  test('501 lowers are refused with a clear error naming the target, before any syscall', async (t) => {
    const base = await tmp.make('sys-mount');
    const lowers = Array.from({ length: 501 }, (_, i) => join(base, `never-created-${i}`));
    assert.throws(() => native.mountOverlay(join(base, 'mnt'), { lowers }), (err: any) => {
      assert.equal(err.code, 'ERR_MOUNT');
      assert.match(err.message, /at most 500 lower directories; 501 were given/);
      assert.ok(err.message.includes(join(base, 'mnt')));
      return true;
    });
    t.diagnostic('refused without touching the kernel');
  });

  test('a lower path longer than fsconfig takes as a string (255 bytes) is passed by descriptor', async (t) => {
    if (!canMount(t)) return;
    const base = await tmp.make('sys-mount');
    let deep = base;
    while (deep.length < 300) deep = join(deep, 'd'.repeat(60));
    await mkdir(deep, { recursive: true });
    await writeFile(join(deep, 'deep-file'), 'deep');
    const other = join(base, 'other');
    await mkdir(other);
    await writeFile(join(other, 'other-file'), 'other');
    const target = await mountPoint(base);
    native.mountOverlay(target, { lowers: [deep, other] });
    mounted.push(target);
    assert.deepEqual((await readdir(target)).sort(), ['deep-file', 'other-file']);
    native.unmount(target);
  });

  test('a missing lower fails naming the target and the lower, with the kernel errno text', async (t) => {
    if (!canMount(t)) return;
    const base = await tmp.make('sys-mount');
    const target = await mountPoint(base);
    assert.throws(() => native.mountOverlay(target, { lowers: [join(base, 'nope'), base] }), (err: any) => {
      assert.equal(err.code, 'ERR_MOUNT');
      assert.ok(err.message.includes(target), err.message);
      assert.ok(err.message.includes(join(base, 'nope')), err.message);
      assert.match(err.message, /No such file or directory/);
      return true;
    });
  });
});

describe('bind mounts and unmount', () => {
  test('a read-only bind shows the source and refuses writes with EROFS; a writable one writes through', async (t) => {
    if (!canMount(t)) return;
    const base = await tmp.make('sys-mount');
    const source = join(base, 'src');
    await mkdir(source);
    await writeFile(join(source, 'f'), 'content');
    const ro = join(base, 'ro');
    const rw = join(base, 'rw');
    await mkdir(ro);
    await mkdir(rw);
    native.bindMount(source, ro, true);
    mounted.push(ro);
    native.bindMount(source, rw, false);
    mounted.push(rw);
    assert.equal(await readFile(join(ro, 'f'), 'utf8'), 'content');
    await assert.rejects(writeFile(join(ro, 'g'), 'x'), { code: 'EROFS' });
    await writeFile(join(rw, 'g'), 'through');
    assert.equal(await readFile(join(source, 'g'), 'utf8'), 'through');
    native.unmount(ro);
    native.unmount(rw, true);
    assert.deepEqual(await readdir(ro), []);
    assert.throws(() => native.unmount(ro), (err: any) => err.code === 'ERR_MOUNT' && err.message.includes(ro));
  });
});
