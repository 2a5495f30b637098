import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openSnapshotter } from '../../../src/snapshotter/index.js';
import { pushFixtures } from '../../fixtures/images.js';
import { runCli } from '../../helpers/cli.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { TempDirs } from '../../helpers/tmp.js';
import { umociUnpack } from '../../helpers/tools.js';
import { assertSameTree, snapshotTree } from '../../helpers/tree.js';
import { startFilePool, type FilePool } from '../../helpers/zfs.js';
import { runConformance } from '../../../src/snapshotter/testsuite/suite.js';
import { registerZfsSpecifics } from './zfs-specifics.js';

// One pool (and zfs-fuse daemon) for everything zfs in the suite: this file only.
let pool: FilePool | string = 'the pool was not set up';
before(async () => {
  pool = await startFilePool();
});
after(async () => {
  if (typeof pool !== 'string') await pool.stop();
});

runConformance(
  {
    name: 'zfs',
    async open(root) {
      await (pool as FilePool).datasetAt(root);
      return openSnapshotter('zfs', root);
    },
    async skipReason() {
      return typeof pool === 'string' ? pool : undefined;
    },
    tempParent: () => (pool as FilePool).mnt,
    async beforeRemove(base) {
      const p = pool as FilePool;
      await p.destroy(`${p.pool}/${basename(base)}_root`);
    },
  },
  registerZfsSpecifics,
);

describe('stratum pull --snapshotter zfs', () => {
  let registry: TestRegistry | undefined;
  const tmp = new TempDirs();
  after(async () => {
    await registry?.stop();
    await tmp.cleanup();
  });

  test('an image unpacks into datasets; its merged view equals native’s and umoci’s', { timeout: 120_000 }, async (t) => {
    if (typeof pool === 'string') return t.skip(`LOUD SKIP: zfs: ${pool}`);
    registry = await startRegistry();
    await pushFixtures(registry);
    const home = await tmp.make('zfs-home');
    const env = { XDG_CONFIG_HOME: home, DOCKER_CONFIG: home, STRATUM_CONFIG: '', STRATUM_SNAPSHOTTER: '', STRATUM_SNAPSHOT_ROOT: '' };
    const ref = `${registry.host}/library/app:1`;
    // The store anywhere; the snapshot root is a dataset's mountpoint (as containerd's zfs snapshotter wants it).
    const store = await tmp.make('zfs-store');
    const snapshots = join(pool.mnt, 'stratum-snapshots');
    await mkdir(snapshots);
    await pool.datasetAt(snapshots);
    const cli = async (...args: string[]) => {
      const r = await runCli(args, env);
      assert.equal(r.code, 0, `stratum ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const merged = async (flags: string[]) => {
      const dir = await tmp.make('zfs-merged');
      await cli('mount', ...flags, ref, dir);
      try {
        return await snapshotTree(dir);
      } finally {
        await cli('unmount', ...flags, dir);
      }
    };
    const zfs = ['--store', store, '--snapshotter', 'zfs', '--snapshot-root', snapshots];
    await cli('pull', ...zfs, '--quiet', ref);
    const zfsTree = await merged(zfs);
    const native = ['--store', await tmp.make('zfs-vs-native'), '--snapshotter', 'native'];
    await cli('pull', ...native, '--quiet', ref);
    assertSameTree(zfsTree, await merged(native), { names: ['zfs', 'native'] });
    assertSameTree(zfsTree, await snapshotTree(await umociUnpack(ref, await tmp.make('zfs-umoci'))), { names: ['zfs', 'umoci'] });
  });
});
