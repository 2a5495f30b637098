/**
 * stratum commit: the changes made in a writable snapshot become a new layer and image. What
 * the new image unpacks to (through stratum's own view, and through skopeo + umoci after a push)
 * is the tree the snapshot showed, for every backend (overlay and erofs diff from the upper
 * directory, the others compare trees); the layer holds whiteouts for deletions
 * and nothing of the backend's own (no 0/0 devices, no overlay xattrs).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, link, lstat, mkdir, readFile, rm, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parseReference } from '../../src/oci/reference.js';
import { OciStore } from '../../src/content/store.js';
import { loadImageByName } from '../../src/image/image.js';
import { TarReader } from '../../src/tar/reader.js';
import { pushFixtures } from '../fixtures/images.js';
import { deleteSubvolumesUnder, mountLoopBtrfs, type LoopBtrfs } from '../helpers/btrfs.js';
import { runCli, runCliOk } from '../helpers/cli.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';
import { umociUnpack } from '../helpers/tools.js';
import { assertSameTree, snapshotTree } from '../helpers/tree.js';
import { erofsUnavailable } from '../../src/snapshotter/backends.js';

const exec = promisify(execFile);
const tmp = new TempDirs();
let registry: TestRegistry;
let env: NodeJS.ProcessEnv;
let btrfs: LoopBtrfs | string = 'not set up';

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: mounts, owners, xattrs';
  for (const bin of ['/usr/bin/skopeo', '/usr/bin/umoci', '/usr/bin/docker-registry']) if (!existsSync(bin)) return `${bin} is not installed`;
  return undefined;
}
const MISSING = missing();

before(async () => {
  if (MISSING) return;
  registry = await startRegistry();
  await pushFixtures(registry);
  const home = await tmp.make('commit-home');
  env = { XDG_CONFIG_HOME: home, DOCKER_CONFIG: home, STRATUM_CONFIG: '', STRATUM_SNAPSHOTTER: '', STRATUM_SNAPSHOT_ROOT: '' };
  btrfs = await mountLoopBtrfs(512);
});
after(async () => {
  if (typeof btrfs !== 'string') {
    await deleteSubvolumesUnder(btrfs.mnt);
    await btrfs.unmount();
  }
  await registry?.stop();
  await tmp.cleanup();
});

const cli = (...args: string[]) => runCliOk(args, env);

/** Changes of every kind a layer diff must carry, made through the mounted snapshot. */
async function change(dir: string): Promise<void> {
  await writeFile(join(dir, 'added.txt'), 'new file\n');
  await writeFile(join(dir, 'etc/os-release'), 'ID=committed\n'); // content of a lower file
  await rm(join(dir, 'usr/bin/hi')); // a lower file deleted
  await rm(join(dir, 'home/user'), { recursive: true }); // a lower directory deleted
  await chmod(join(dir, 'var/cache'), 0o700); // metadata of a lower directory
  await chown(join(dir, 'app/main.js'), 1000, 1000); // owner of a lower file
  await mkdir(join(dir, 'app/sub/deep'), { recursive: true });
  await symlink('../../added.txt', join(dir, 'app/sub/link'));
  await link(join(dir, 'added.txt'), join(dir, 'app/sub/hard'));
  await exec('setfattr', ['-n', 'user.note', '-v', 'kept', join(dir, 'added.txt')]);
  await exec('mkfifo', [join(dir, 'app/sub/fifo')]);
  await writeFile(join(dir, 'usr/bin/hello'), 'same size?'); // replaced content
  await truncate(join(dir, 'usr/bin/hello-again'), 3);
  // A lower file whose content changes but keeps its size and its whole-second mtime: only the bytes tell.
  const sameSize = join(dir, 'var/cache/new.txt');
  const before = await lstat(sameSize);
  const old = await readFile(sameSize);
  await writeFile(sameSize, Buffer.from(old.map((b) => (b === 0x78 ? 0x79 : 0x78))));
  await utimes(sameSize, before.atime, before.mtime);
  assert.equal((await lstat(sameSize)).mtimeMs, before.mtimeMs);
  assert.equal(before.mtimeMs % 1000, 0, 'the fixture has whole-second mtimes');
}

async function layerEntries(store: string, name: string): Promise<Array<{ path: string; type: string; xattrs: string[] }>> {
  const s = await OciStore.open(store);
  const image = await loadImageByName(s, name);
  const top = image.manifest.layers.at(-1)!;
  const { createGunzip } = await import('node:zlib');
  const out: Array<{ path: string; type: string; xattrs: string[] }> = [];
  const reader = new TarReader();
  for await (const chunk of s.open(top.digest).pipe(createGunzip()) as AsyncIterable<Buffer>) {
    reader.push(chunk);
    for (let e = reader.next(); e; e = reader.next()) {
      if (e.kind === 'entry') out.push({ path: e.header.name, type: e.header.type, xattrs: Object.keys(e.header.xattrs ?? {}) });
    }
  }
  return out;
}

describe('stratum commit: a writable snapshot’s changes become an image', () => {
  for (const snapshotter of ['overlay', 'native', 'btrfs', 'erofs'] as const) {
    test(`${snapshotter}: the new image unpacks (stratum view, and umoci after a push) to the tree the snapshot shows`, { timeout: 120_000 }, async (t) => {
      if (MISSING) return t.skip(MISSING);
      if (snapshotter === 'btrfs' && typeof btrfs === 'string') return t.skip(`LOUD SKIP: btrfs: ${btrfs}`);
      const noErofs = snapshotter === 'erofs' ? await erofsUnavailable() : undefined;
      if (noErofs) return t.skip(`LOUD SKIP: erofs: ${noErofs}`);
      const store = snapshotter === 'btrfs' ? join((btrfs as LoopBtrfs).mnt, `store-${Date.now()}`) : await tmp.make(`commit-${snapshotter}`);
      const flags = ['--store', store, '--snapshotter', snapshotter];
      const app = `${registry.host}/library/app:1`;
      await cli('pull', ...flags, '--quiet', app);
      const rw = await tmp.make('commit-rw');
      await cli('mount', ...flags, '--rw', 'work', app, rw);
      let expected;
      try {
        await change(rw);
        expected = await snapshotTree(rw);
        // Committed while still mounted, as docker commits a running container.
        const out = JSON.parse(await cli('commit', ...flags, '--json', '-m', 'my change', '-a', 'tester', 'work', 'committed/app:2'));
        assert.match(out.id, /^sha256:[0-9a-f]{64}$/);
        assert.equal(out.name, `docker.io/committed/app:2`);
        assert.ok(out.whiteouts >= 2, `whiteouts for the deleted file and directory: ${out.whiteouts}`);
        // The snapshot is still there and still writable.
        await writeFile(join(rw, 'after-commit'), 'x');
      } finally {
        await cli('unmount', ...flags, rw);
      }

      const ro = await tmp.make('commit-ro');
      await cli('mount', ...flags, 'committed/app:2', ro);
      try {
        assertSameTree(expected, await snapshotTree(ro), { names: ['snapshot', 'committed image'] });
      } finally {
        await cli('unmount', ...flags, ro);
      }

      const entries = await layerEntries(store, 'committed/app:2');
      const paths = entries.map((e) => e.path.replace(/\/$/, ''));
      for (const p of ['usr/bin/.wh.hi', 'home/.wh.user', 'added.txt', 'etc/os-release', 'app/main.js', 'var/cache', 'var/cache/new.txt', 'app/sub/hard']) {
        assert.ok(paths.includes(p), `${p} in the layer: ${paths.join(' ')}`);
      }
      assert.ok(!paths.includes('app/sub/after-commit') && !paths.includes('tmp'), 'only changes (and their parents) are in the layer');
      assert.ok(!entries.some((e) => e.type === 'char'), 'no overlay whiteout devices');
      assert.ok(!entries.some((e) => e.xattrs.some((x) => x.includes('overlay'))), 'no overlay xattrs');

      const s = await OciStore.open(store);
      const image = await loadImageByName(s, 'committed/app:2');
      const base = await loadImageByName(s, app);
      assert.equal(image.manifest.layers.length, base.manifest.layers.length + 1);
      assert.deepEqual(image.config.rootfs.diff_ids.slice(0, -1), base.config.rootfs.diff_ids);
      const step = image.config.history!.at(-1)!;
      assert.equal(step.comment, 'my change');
      assert.equal(step.author, 'tester');

      const dest = `${registry.host}/committed/app-${snapshotter}:2`;
      await cli('push', '--store', store, 'committed/app:2', dest);
      assertSameTree(expected, await snapshotTree(await umociUnpack(dest, await tmp.make('commit-umoci'))), { names: ['snapshot', 'umoci'] });
      if (snapshotter === 'btrfs') await deleteSubvolumesUnder(store);
    });
  }

  test('errors: a committed snapshot, a missing key, a digest as the name, a snapshot not on an image', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp.make('commit-errors');
    const flags = ['--store', store, '--snapshotter', 'native'];
    const app = `${registry.host}/library/app:1`;
    await cli('pull', ...flags, '--quiet', app);
    const fail = async (args: string[], pattern: RegExp) => {
      const r = await runCli(['commit', ...flags, ...args], env);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, pattern);
    };
    await fail(['nope', 'x:1'], /snapshot "nope" not found \(ERR_NOT_FOUND\)/);
    const s = await OciStore.open(store);
    const image = await loadImageByName(s, app);
    const top = (await import('../../src/oci/digest.js')).chainIds(image.config.rootfs.diff_ids).at(-1)!;
    await fail([top, 'x:1'], /is committed: only an active snapshot .* can be committed to an image \(ERR_FAILED_PRECONDITION\)/);
    await cli('snapshot', ...flags, 'prepare', 'loose');
    await fail(['loose', 'x:1'], /does not say which image it was made from/);
    await fail(['--image', app, 'loose', 'x:1'], /is not on the top layer of .*library\/app:1/);
    await fail(['loose', `x@sha256:${'a'.repeat(64)}`], /name a tag, not a digest/);
    assert.equal((await runCli(['commit', ...flags, 'only-one'], env)).code, 2);
    assert.equal(await s.getTag(parseReference('x:1').toString()), undefined);
  });
});
