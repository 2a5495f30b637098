/**
 * `stratum migrate --to DRIVER` on a real store: three images sharing a base layer, pulled from a
 * real registry into overlay on a loop btrfs, moved overlay → btrfs (killed with SIGKILL halfway,
 * then resumed) → native → overlay; after every move each image's tree equals the tree GNU tar
 * extracts from its layers, and df/gc see only the new driver's snapshots.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { Engine, isStratumError } from '../../src/index.js';
import { compareTrees, readTree } from '../../src/snapshotter/tree-compare.js';
import { erofsUnavailable } from '../../src/snapshotter/erofs/erofs.js';
import { random, type EntrySpec } from '../fixtures/layers.js';
import { pushStackedImages } from '../fixtures/push.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { isolatedCliEnv, needsRootAndRegistry, runCli, spawnCli, type CliResult } from '../helpers/cli.js';
import { TempDirs } from '../helpers/tmp.js';
import { deleteSubvolumesUnder, mountLoopBtrfs, type LoopBtrfs } from '../helpers/btrfs.js';

const run = promisify(execFile);
const tmp = new TempDirs();

const BASE: EntrySpec[] = [
  { type: 'dir', path: 'etc', mode: 0o755 },
  { type: 'file', path: 'etc/os-release', content: 'ID=migrate-base\n' },
  { type: 'file', path: 'etc/shadow', content: 'root:*:1::::::\n', mode: 0o640, uid: 0, gid: 42 },
  { type: 'file', path: 'etc/tagged', content: 'x', xattrs: { 'user.origin': 'base-layer' } },
  { type: 'symlink', path: 'etc/localtime', target: '/usr/share/zoneinfo/UTC' },
  { type: 'dir', path: 'usr/bin', mode: 0o755 },
  { type: 'file', path: 'usr/bin/tool', content: random(6 * 1024 * 1024, 'migrate-tool'), mode: 0o4755 },
  { type: 'hardlink', path: 'usr/bin/tool-alias', target: 'usr/bin/tool' },
  { type: 'dir', path: 'var/cache', mode: 0o755 },
  { type: 'file', path: 'var/cache/a', content: 'cached a\n', uid: 1000, gid: 1000 },
  { type: 'file', path: 'var/cache/b', content: 'cached b\n' },
];
/** Deletes a base file, adds its own. */
const APP_A: EntrySpec[] = [
  { type: 'whiteout', path: 'etc/os-release' },
  { type: 'dir', path: 'app', mode: 0o750, uid: 1000, gid: 1000 },
  { type: 'file', path: 'app/a.bin', content: random(4 * 1024 * 1024, 'migrate-a') },
];
/** Makes var/cache opaque: only its own entry stays. */
const APP_B: EntrySpec[] = [
  { type: 'opaque', path: 'var/cache' },
  { type: 'file', path: 'var/cache/b-only', content: 'b\n' },
  { type: 'file', path: 'app-b.txt', content: 'image b\n', mode: 0o600 },
];
const APP_C: EntrySpec[] = [{ type: 'file', path: 'etc/c.conf', content: random(3 * 1024 * 1024, 'migrate-c') }];

const MISSING = needsRootAndRegistry();
let registry: TestRegistry | undefined;
let fs: LoopBtrfs | string = 'not set up';
let env: NodeJS.ProcessEnv = {};
let refs: string[] = [];
let store = '';
/** Per image reference: the tree GNU tar extracts from its layer blobs. */
const expected = new Map<string, string>();

before(async () => {
  if (MISSING) return;
  fs = await mountLoopBtrfs(1536);
  if (typeof fs === 'string') return;
  registry = await sharedRegistry();
  env = isolatedCliEnv(await tmp.make('migrate-home'));
  const images = await pushStackedImages(registry, await tmp.make('migrate-images'), 'migrate', [BASE, APP_A, APP_B, APP_C], { a: [0, 1], b: [0, 2], c: [0, 3] });
  refs = [images.a.reference, images.b.reference, images.c.reference];
  store = join(fs.mnt, 'store');
});

after(async () => {
  await registry?.stop();
  if (typeof fs !== 'string') {
    await tmp.cleanup();
    await deleteSubvolumesUnder(fs.mnt).catch(() => {});
    await fs.unmount();
  } else await tmp.cleanup();
});

const cli = (...args: string[]): Promise<CliResult> => runCli(args, env);
async function ok(...args: string[]): Promise<string> {
  const r = await cli(...args);
  assert.equal(r.code, 0, `stratum ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const storeConfig = async () => JSON.parse(await readFile(join(store, 'stratum.json'), 'utf8')) as Record<string, unknown>;

/** Applies each layer blob with GNU tar: whiteouts and opaque markers first (from the listing), then the entries. */
async function tarExtraction(ref: string): Promise<string> {
  const engine = await Engine.open({ root: store });
  let layers: string[];
  try {
    layers = (await engine.resolveImage(ref)).manifest.layers.map((l) => join(store, 'blobs', 'sha256', l.digest.slice('sha256:'.length)));
  } finally {
    await engine.close();
  }
  const dir = join(await tmp.make('migrate-expected'), 'root');
  await mkdir(dir);
  await chmod(dir, 0o755);
  for (const blob of layers) {
    const names = (await run('tar', ['-tzf', blob], { maxBuffer: 16 << 20 })).stdout.split('\n').filter((n) => n !== '');
    for (const name of names) {
      const base = name.split('/').at(-1)!;
      if (base === '.wh..wh..opq') {
        const parent = join(dir, dirname(name));
        for (const entry of existsSync(parent) ? (await run('ls', ['-A', parent])).stdout.split('\n').filter((e) => e !== '') : []) await rm(join(parent, entry), { recursive: true, force: true });
      } else if (base.startsWith('.wh.')) await rm(join(dir, dirname(name), base.slice('.wh.'.length)), { recursive: true, force: true });
    }
    await run('tar', ['-xzf', blob, '-C', dir, '--numeric-owner', '--same-permissions', '--xattrs', "--xattrs-include=*", '--exclude=.wh.*']);
  }
  return dir;
}

/** Each image, mounted read-only from the store's current driver, equals its tar extraction. */
async function assertImagesAsExtracted(driver: string): Promise<void> {
  const mnt = await tmp.make('migrate-mnt');
  for (const [i, ref] of refs.entries()) {
    const target = join(mnt, String(i));
    assert.match(await ok('mount', '--store', store, ref, target), new RegExp(driver));
    try {
      const differences = compareTrees(await readTree(expected.get(ref)!), await readTree(target));
      assert.deepEqual(differences, [], `${ref} on ${driver}`);
    } finally {
      await ok('unmount', '--store', store, target);
    }
  }
}

/** Every snapshot of the store, by driver, as `df` lists them; and gc finds nothing to remove. */
async function assertOnlyDriver(driver: string): Promise<void> {
  const df = JSON.parse(await ok('df', '--store', store, '--format', 'json', '-v')) as unknown;
  const engine = await Engine.open({ root: store });
  try {
    const snapshots = await engine.listSnapshots();
    assert.ok(snapshots.length >= 4, `${snapshots.length} snapshots`);
    assert.deepEqual([...new Set(snapshots.map((s) => s.snapshotter))], [driver]);
    const usage = await engine.usage();
    assert.deepEqual([...new Set(usage.snapshots.map((s) => s.snapshotter))], [driver]);
    assert.ok(usage.unpacked.every((u) => u.unpacked), JSON.stringify(usage.unpacked));
    const gc = await engine.gc({ dryRun: true });
    assert.deepEqual(gc.snapshots, []);
  } finally {
    await engine.close();
  }
  void df;
  for (const other of ['overlay', 'btrfs', 'native', 'erofs'].filter((d) => d !== driver)) assert.equal(existsSync(join(store, 'snapshots', other)), false, `snapshots/${other} is gone`);
  assert.equal(existsSync(join(store, 'migrate.json')), false);
}

describe('stratum migrate --to DRIVER', () => {
  test('overlay → btrfs (SIGKILL halfway, resumed) → erofs → native → overlay: trees as GNU tar extracts them, nothing lost', { timeout: 600_000 }, async (t) => {
    if (MISSING) return t.skip(MISSING);
    if (typeof fs === 'string') return t.skip(`LOUD SKIP: btrfs: ${fs}`);
    const erofsMissing = await erofsUnavailable();
    for (const ref of refs) await ok('pull', '--store', store, '--snapshotter', 'overlay', ref);
    assert.equal((await storeConfig())['storage-driver'], 'overlay');
    for (const ref of refs) expected.set(ref, await tarExtraction(ref));
    // The comparison sees xattrs, owners and setuid bits: the fixtures carry them.
    const reference = await readTree(expected.get(refs[0]!)!);
    assert.equal(Buffer.from(reference.get('etc/tagged')!.xattrs['user.origin']!, 'hex').toString(), 'base-layer');
    assert.equal(reference.get('usr/bin/tool')!.mode, 0o4755);
    assert.equal(reference.get('etc/shadow')!.gid, 42);
    await assertImagesAsExtracted('overlay');

    // Killed once the journal shows one image verified.
    const { child, done } = spawnCli(['migrate', '--store', store, '--to', 'btrfs', '--json'], env);
    let killed = false;
    for (let i = 0; i < 6000 && !killed && child.exitCode === null; i++) {
      const journal = await readFile(join(store, 'migrate.json'), 'utf8').then((s) => JSON.parse(s) as { verified: object }, () => undefined);
      if (journal && Object.keys(journal.verified).length >= 1) {
        child.kill('SIGKILL');
        killed = true;
      } else await sleep(20);
    }
    const first = await done;
    assert.equal(first.signal, 'SIGKILL', `the migration was killed (it printed: ${first.stdout}${first.stderr})`);
    const journal = JSON.parse(await readFile(join(store, 'migrate.json'), 'utf8')) as { phase: string; verified: object };
    assert.equal(journal.phase, 'unpacking');
    assert.equal((await storeConfig())['storage-driver'], 'overlay', 'the old driver stays the store’s until every image verified');
    await assertImagesAsExtracted('overlay');

    const resumed = await ok('migrate', '--store', store, '--to', 'btrfs');
    assert.match(resumed, /^Resuming the migration of 3 images from overlay to btrfs$/m);
    assert.match(resumed, /verified earlier/);
    assert.match(resumed, /The store now uses the btrfs storage driver/);
    assert.match(resumed, /Removed \d+ overlay snapshots/);
    assert.equal((await storeConfig())['storage-driver'], 'btrfs');
    await assertImagesAsExtracted('btrfs');
    await assertOnlyDriver('btrfs');

    // erofs: each layer an EROFS image under overlay (where the kernel mounts erofs).
    if (erofsMissing === undefined) {
      assert.match(await ok('migrate', '--store', store, '--to', 'erofs'), /Removed \d+ btrfs snapshots/);
      await assertImagesAsExtracted('erofs');
      await assertOnlyDriver('erofs');
    } else console.error(`LOUD SKIP of the erofs hop: ${erofsMissing}`);

    const events = (await ok('migrate', '--store', store, '--to', 'native', '--json')).trim().split('\n').map((l) => JSON.parse(l) as { type: string; comparedWith?: string });
    assert.deepEqual(events.map((e) => e.type), ['start', 'image', 'image', 'image', 'switched', 'removed']);
    assert.ok(events.filter((e) => e.type === 'image').every((e) => e.comparedWith === 'old-driver'));
    await assertImagesAsExtracted('native');
    await assertOnlyDriver('native');

    await ok('migrate', '--store', store, '--to', 'overlay2');
    await assertImagesAsExtracted('overlay');
    await assertOnlyDriver('overlay');
    const info = JSON.parse(await ok('info', '--store', store, '--format', 'json')) as { Driver: string; DriverChosen: string };
    assert.equal(info.Driver, 'overlay');
    assert.match(info.DriverChosen, /migrated from native/);
  });

  test('a tree that differs in the new driver stops the migration before the switch, naming the path', { timeout: 300_000 }, async (t) => {
    if (MISSING) return t.skip(MISSING);
    if (typeof fs === 'string') return t.skip(`LOUD SKIP: btrfs: ${fs}`);
    const other = await tmp.make('migrate-mismatch');
    await ok('pull', '--store', other, '--snapshotter', 'native', refs[2]!);
    const engine = await Engine.open({ root: other });
    try {
      const top = (await engine.inspect(refs[2]!)).chainIds.at(-1)!;
      const { snapshotter } = await engine.findSnapshot(top);
      // Damage the old driver's copy: the new one, unpacked from the blobs, no longer matches it.
      await chmod(join((await snapshotter.driverData!(top)).Dir!, 'etc', 'os-release'), 0o600);
      await assert.rejects(engine.migrate({ to: 'overlay' }), (err: unknown) => {
        assert.ok(isStratumError(err, 'ERR_MIGRATE_MISMATCH'), String(err));
        assert.match((err as Error).message, /etc\/os-release: mode 0644, want 0600/);
        return true;
      });
    } finally {
      await engine.close();
    }
    const config = JSON.parse(await readFile(join(other, 'stratum.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config['storage-driver'], 'native');
    assert.equal(existsSync(join(other, 'migrate.json')), true, 'the journal stays for a later resume');
  });

  test('refusals: the driver in use, an unknown one, one the filesystem cannot hold, mounts, writable snapshots (until --force)', { timeout: 300_000 }, async (t) => {
    if (MISSING) return t.skip(MISSING);
    if (typeof fs === 'string') return t.skip(`LOUD SKIP: btrfs: ${fs}`);
    if (!existsSync(join(store, 'stratum.json'))) return t.skip('needs the store of the test before');
    const fails = async (pattern: RegExp, ...args: string[]) => {
      const r = await cli('migrate', '--store', store, ...args);
      assert.notEqual(r.code, 0, `migrate ${args.join(' ')} should fail`);
      assert.match(r.stderr, pattern);
      return r;
    };
    await fails(/already uses the overlay storage driver/, '--to', 'overlay');
    await fails(/unknown storage driver "aufs2"/, '--to', 'aufs2');
    await fails(/'zfs' needs its snapshot root on a ZFS dataset/, '--to', 'zfs');
    await fails(/needs --to DRIVER/);
    await fails(/storage option "btrfs.compression=fast"/, '--to', 'btrfs', '--storage-opt', 'btrfs.compression=fast');

    const target = join(await tmp.make('migrate-rw'), 'rootfs');
    await ok('mount', '--store', store, '--rw', 'work-1', refs[0]!, target);
    await fails(/stratum has snapshots mounted: .*work-1/, '--to', 'native');
    await ok('unmount', '--store', store, target);
    await fails(/no image carries to the new driver: snapshot work-1 \(active.*stratum commit KEY NAME.*--force/, '--to', 'native');
    assert.equal((await storeConfig())['storage-driver'], 'overlay');

    const forced = await ok('migrate', '--store', store, '--to', 'native', '--force', '--storage-opt', 'native.reflink=false');
    assert.match(forced, /kept in overlay: .*work-1/);
    const config = await storeConfig();
    assert.equal(config['storage-driver'], 'native');
    assert.deepEqual(config['storage-opts'], ['native.reflink=false']);
    const info = JSON.parse(await ok('info', '--store', store, '--format', 'json')) as { StorageOpts: string[]; DriverStatus: Array<[string, string]> };
    assert.deepEqual(info.StorageOpts, ['native.reflink=false']);
    assert.deepEqual(info.DriverStatus.find(([k]) => k === 'Reflink'), ['Reflink', 'false']);
    const text = await ok('info', '--store', store);
    assert.match(text, /^ Storage Options: native\.reflink=false$/m);
    assert.match(text, /^ Reflink: false$/m);
    // The writable snapshot and what it builds on stayed in overlay.
    const rows = await ok('snapshot', 'ls', '--store', store);
    assert.match(rows, /work-1/);
    await assertImagesAsExtracted('native');
  });
});
