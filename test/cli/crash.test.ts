/**
 * A stratum process killed with SIGKILL mid-pull or mid-commit leaves temporaries behind
 * (extract-* snapshots, a commit-view-* snapshot, overlay mounts, an ingest directory). The next
 * command, or `gc`, must remove them, and must leave a live process's temporaries alone.
 * Real CLI processes, a real registry behind the fault proxy (to hold a pull mid-unpack), real
 * mounts read back from /proc/self/mountinfo.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { chainIds, type Digest } from '../../src/oci/digest.js';
import { MetadataStore } from '../../src/snapshotter/metadata.js';
import { OciStore } from '../../src/content/store.js';
import { mountAll, openSnapshotter, unmountAll } from '../../src/snapshotter/index.js';
import { mountTemporary, unmountTemporary } from '../../src/snapshotter/temporaries.js';
import { buildLayer, random, type EntrySpec } from '../fixtures/layers.js';
import { writeOciLayout } from '../fixtures/layout.js';
import { pushOciLayout } from '../fixtures/push.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { isolatedCliEnv, needsRootAndRegistry, runCli, spawnCli, type CliResult } from '../helpers/cli.js';
import { mountPoints, TempDirs } from '../helpers/tmp.js';

const exec = promisify(execFile);
const tmpDirs = new TempDirs();

const MISSING = needsRootAndRegistry();

const LAYER_BYTES = 1 << 20;
const layerEntries = (i: number): EntrySpec[] => [
  { type: 'dir', path: `l${i}` },
  { type: 'file', path: `l${i}/data.bin`, content: random(LAYER_BYTES, `crash-layer-${i}`) },
];

let registry: TestRegistry | undefined;
let proxy: FaultProxy | undefined;
let env: NodeJS.ProcessEnv = {};
let reference = '';
let diffIds: Digest[] = [];
const stores: string[] = [];

before(async () => {
  if (MISSING) return;
  registry = await sharedRegistry();
  proxy = await FaultProxy.start(registry.url);
  const home = await tmpDirs.make('crash-home');
  env = isolatedCliEnv(home);
  const work = await tmpDirs.make('crash-image');
  const layers = await Promise.all([0, 1, 2].map((i) => buildLayer(layerEntries(i), { compression: 'gzip', dir: join(work, 'layers') })));
  const layout = await writeOciLayout(join(work, 'layout'), [{ tag: '1', layers }]);
  await pushOciLayout(layout.dir, '1', registry, 'crash/img:1', 'oci');
  reference = `${proxy.host}/crash/img:1`;
  diffIds = layout.manifests[0]!.config.rootfs.diff_ids;
});

after(async () => {
  // On a build without the fix, killed processes leave mounts that mention the stores: take them down.
  for (const store of stores) for (const point of await mountsMentioning(store)) await exec('umount', ['-l', point]).catch(() => {});
  await proxy?.stop();
  await registry?.stop();
  await tmpDirs.cleanup();
});

async function newStore(prefix: string): Promise<string> {
  const store = await tmpDirs.make(prefix);
  stores.push(store);
  return store;
}

const cli = (args: string[]): Promise<CliResult> => runCli(args, env);

/** Mount points whose mountinfo line names `path` (as mount point, source or overlay layer). */
async function mountsMentioning(path: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .filter((line) => line.includes(path))
    .map((line) => line.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

/** Snapshot keys of the snapshotter at `root`, read from its metadata (no reclaim on the way). */
async function snapshotKeys(root: string): Promise<string[]> {
  return Object.keys((await new MetadataStore(root).read()).snapshots).sort();
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const temporaries = (keys: string[]) => keys.filter((k) => /^(extract|commit-view|fixup|rootfs-view)-/.test(k));

/**
 * Starts a pull whose layer blobs stop after 64 KiB for a minute, waits until it has `wanted`
 * extract-* snapshots, runs `whileLive` with their keys, then kills the pull with SIGKILL.
 */
async function killPullMidUnpack(store: string, snapshotter: string, wanted: number, whileLive: (live: string[], running: () => boolean) => Promise<void> = async () => {}): Promise<void> {
  const root = join(store, 'snapshots', snapshotter);
  proxy!.reset();
  proxy!.stallAfter(64 * 1024, 60_000, { count: 10 });
  const pull = spawnCli(['pull', '--store', store, '--snapshotter', snapshotter, reference], env);
  try {
    const live = await waitFor('extract-* snapshots of the running pull', async () => {
      const keys = existsSync(root) ? temporaries(await snapshotKeys(root)) : [];
      return keys.length >= wanted ? keys : undefined;
    });
    await whileLive(live, () => pull.child.exitCode === null);
  } finally {
    pull.child.kill('SIGKILL');
  }
  assert.equal((await pull.done).signal, 'SIGKILL');
  proxy!.reset();
}

for (const snapshotter of ['overlay', 'native'] as const) {
  describe(`kill -9 during pull (${snapshotter})`, () => {
    test('a concurrent gc leaves the live pull’s extract-* snapshots; after the kill, gc removes them and the re-pull works', async (t) => {
      if (MISSING) return t.skip(MISSING);
      const store = await newStore(`crash-pull-${snapshotter}`);
      const root = join(store, 'snapshots', snapshotter);
      const wanted = snapshotter === 'overlay' ? 3 : 1; // native extracts only onto a committed parent
      await killPullMidUnpack(store, snapshotter, wanted, async (live, running) => {
        assert.ok(live.every((k) => k.startsWith('extract-')), live.join());

        // A LIVE process's temporaries survive gc and snapshot cleanup run beside it.
        const gc = await cli(['gc', '--store', store, '--snapshotter', snapshotter]);
        assert.equal(gc.code, 0, gc.stderr);
        const cleanup = await cli(['snapshot', '--store', store, '--snapshotter', snapshotter, 'cleanup']);
        assert.equal(cleanup.code, 0, cleanup.stderr);
        assert.deepEqual(temporaries(await snapshotKeys(root)).filter((k) => live.includes(k)), live, 'the live pull’s snapshots are kept');
        assert.ok(running(), 'the pull is still running');
      });
      assert.ok(temporaries(await snapshotKeys(root)).length > 0, 'the killed pull left extract-* snapshots');

      const gc = await cli(['gc', '--store', store, '--snapshotter', snapshotter]);
      assert.equal(gc.code, 0, gc.stderr);
      assert.match(gc.stdout, /removed snapshot extract-\S+ \(left by a dead process\)/);
      assert.deepEqual(temporaries(await snapshotKeys(root)), [], 'no extract-* snapshot after gc');
      assert.deepEqual(await mountsMentioning(store), [], 'nothing mounted under the store');

      const again = await cli(['pull', '--store', store, '--snapshotter', snapshotter, reference]);
      assert.equal(again.code, 0, again.stderr);
      const keys = await snapshotKeys(root);
      assert.deepEqual(temporaries(keys), []);
      for (const chainId of chainIds(diffIds)) assert.ok(keys.includes(chainId), `${chainId} committed`);
      // Nothing but the committed chain has data left.
      const s = await cli(['snapshot', '--store', store, '--snapshotter', snapshotter, 'cleanup']);
      assert.equal(s.code, 0, s.stderr);
      assert.equal((await readdir(join(root, 'snapshots'))).length, 3);
    });

    test('the next pull itself removes what a killed pull left', async (t) => {
      if (MISSING) return t.skip(MISSING);
      const store = await newStore(`crash-repull-${snapshotter}`);
      const root = join(store, 'snapshots', snapshotter);
      await killPullMidUnpack(store, snapshotter, 1);
      assert.ok(temporaries(await snapshotKeys(root)).length > 0, 'the killed pull left extract-* snapshots');
      const again = await cli(['pull', '--store', store, '--snapshotter', snapshotter, reference]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(temporaries(await snapshotKeys(root)), []);
    });
  });
}

describe('kill -9 during commit', () => {
  // native compares the trees through two mounts (the parent's view and the snapshot); overlay reads its upper directory and mounts nothing.
  for (const { driver, mounts } of [{ driver: 'native', mounts: 2 }, { driver: 'overlay', mounts: 0 }] as const) {
  test(`${driver}: the next commit unmounts and removes the dead commit’s mounts, view and ingest directory, then commits`, async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await newStore(`crash-commit-${driver}`);
    const root = join(store, 'snapshots', driver);
    proxy!.reset();
    assert.equal((await cli(['pull', '--store', store, '--snapshotter', driver, reference])).code, 0);
    const dir = await tmpDirs.make('crash-rw');
    const m = await cli(['mount', '--store', store, '--snapshotter', driver, '--rw', 'work', reference, dir]);
    assert.equal(m.code, 0, m.stderr);
    // Enough incompressible data that gzipping the layer takes a while.
    await exec('sh', ['-c', `head -c ${96 << 20} /dev/urandom > ${join(dir, 'big.bin')}`]);
    await writeFile(join(dir, 'small.txt'), 'hello\n');
    assert.equal((await cli(['unmount', '--store', store, '--snapshotter', driver, dir])).code, 0);
    assert.deepEqual(await mountsMentioning(store), []);

    const ingestDirs = async () => (await readdir(join(store, 'ingest')).catch(() => [] as string[])).filter((n) => n.startsWith('ref-'));
    const commit = spawnCli(['commit', '--store', store, '--snapshotter', driver, 'work', 'crash/committed:1'], env);
    try {
      // native: the parent view and the snapshot itself are both mounted; the layer is being written.
      await waitFor(`the commit’s ${mounts} mounts, its views and its ingest directory`, async () => {
        const mounted = await mountsMentioning(store);
        const views = (await snapshotKeys(root)).filter((k) => k.startsWith('commit-view-'));
        return mounted.length >= mounts && views.length === (mounts > 0 ? 1 : 0) && (await ingestDirs()).length === 1 ? true : undefined;
      });
    } finally {
      commit.child.kill('SIGKILL');
    }
    assert.equal((await commit.done).signal, 'SIGKILL');
    if (mounts === 0) assert.deepEqual(await mountsMentioning(store), [], 'reading the upper directory mounted nothing');
    else assert.ok((await mountsMentioning(store)).length >= mounts, 'the killed commit left its mounts');
    assert.equal((await ingestDirs()).length, 1, 'the killed commit left its ingest directory');

    const again = await cli(['commit', '--store', store, '--snapshotter', driver, 'work', 'crash/committed:1']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout.trim(), /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(await mountsMentioning(store), [], 'no mount left under the store');
    assert.deepEqual(temporaries(await snapshotKeys(root)), [], 'no commit-view-* snapshot left');
    assert.deepEqual(await ingestDirs(), [], 'no commit ingest directory left');
    assert.deepEqual(await readdir(join(root, 'mounts')).catch(() => [] as string[]), [], 'no temporary mount point left');

    // The committed image is whole: a view of it holds the new file.
    const view = await tmpDirs.make('crash-view');
    assert.equal((await cli(['mount', '--store', store, '--snapshotter', driver, 'crash/committed:1', view])).code, 0);
    try {
      assert.equal(await readFile(join(view, 'small.txt'), 'utf8'), 'hello\n');
    } finally {
      assert.equal((await cli(['unmount', '--store', store, '--snapshotter', driver, view])).code, 0);
    }
  });
  }

  test('gc removes a dead commit’s ingest directory at once, not after the partial-download grace hour', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await newStore('crash-ingest');
    const dir = join(store, 'ingest', 'commit-999999999-0123456789ab');
    await exec('mkdir', ['-p', dir]);
    await writeFile(join(dir, 'lock'), JSON.stringify({ pid: 999999999, hostname: hostname(), acquiredAt: new Date().toISOString(), nonce: 'ab' }) + '\n');
    await writeFile(join(dir, 'data'), 'x'.repeat(1000));
    const gc = await cli(['gc', '--store', store]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.equal(existsSync(dir), false);
  });
});

describe('reclaimTemporaries: only what dead processes recorded', () => {
  test('a live process’s recorded mount and a mount without a record stay; a dead process’s recorded mount goes', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await newStore('crash-records');
    await OciStore.open(store);
    const root = join(store, 'snapshots', 'native');
    const s = await openSnapshotter('native', root);
    const source = await tmpDirs.make('crash-bind-source');
    const bind = [{ type: 'bind', source, options: ['rbind', 'ro'] }];
    // Ours (this test process is alive), through the same call stratum uses.
    const live = await mountTemporary(root, bind, 'test');
    // One nobody recorded, in the same directory.
    const foreign = join(root, 'mounts', 'not-ours');
    await mkdir(foreign);
    await mountAll(bind, foreign);
    // A dead process's: its record names a pid that cannot exist.
    const dead = join(root, 'mounts', '999999999-0123456789abcdef01234567');
    await mkdir(dead);
    await writeFile(`${dead}.json`, JSON.stringify({ pid: 999999999, hostname: hostname(), acquiredAt: new Date().toISOString(), nonce: 'x' }));
    await mountAll(bind, dead);
    try {
      const gc = await cli(['gc', '--store', store]);
      assert.equal(gc.code, 0, gc.stderr);
      assert.equal(gc.stdout.split('\n').filter((l) => l.startsWith('unmounted ')).join('\n'), `unmounted ${dead} (left by a dead process)`);
      const points = await mountPoints();
      assert.ok(points.includes(live), 'the live process’s mount stays');
      assert.ok(points.includes(foreign), 'a mount without a record stays');
      assert.ok(!points.includes(dead), 'the dead process’s mount is gone');
      assert.equal(existsSync(dead) || existsSync(`${dead}.json`), false);
    } finally {
      await unmountTemporary(live);
      await unmountAll(foreign);
      await s.close();
    }
  });
});
