/**
 * The Engine owns the store: one storage driver per store, snapshots found by key on every
 * backend, a mount table, and gc/df that see the snapshots. Real registry, real overlay and bind
 * mounts, a real btrfs on a loop device, a real overlayfs as a store's backing filesystem.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Engine } from '../../src/index.js';
import type { Digest } from '../../src/oci/digest.js';
import { random, type EntrySpec } from '../fixtures/layers.js';
import { pushStackedImages } from '../fixtures/push.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { isolatedCliEnv, needsRootAndRegistry, runCli, type CliResult } from '../helpers/cli.js';
import { mountPoints, TempDirs } from '../helpers/tmp.js';
import { mountLoopBtrfs, deleteSubvolumesUnder, type LoopBtrfs } from '../helpers/btrfs.js';
import { fuseOverlayfsMissing } from '../../src/snapshotter/fuse-overlayfs/fuse-overlayfs.js';

const run = promisify(execFile);
const tmpDirs = new TempDirs();
const tmp = (prefix: string) => tmpDirs.make(prefix);

const MISSING = needsRootAndRegistry();

const BASE: EntrySpec[] = [
  { type: 'dir', path: 'etc' },
  { type: 'file', path: 'etc/os-release', content: 'ID=engine-base\n' },
  { type: 'file', path: 'etc/big.bin', content: random(3 * 1024 * 1024, 'engine-big') },
];
const APP: EntrySpec[] = [
  { type: 'dir', path: 'app' },
  { type: 'file', path: 'app/main.txt', content: 'app layer\n' },
  { type: 'file', path: 'app/data.bin', content: random(2 * 1024 * 1024, 'engine-app') },
];

let registry: TestRegistry | undefined;
let env: NodeJS.ProcessEnv = {};
let refs: Record<'one' | 'two', { reference: string; chain: Digest[] }>;

before(async () => {
  if (MISSING) return;
  registry = await sharedRegistry();
  env = isolatedCliEnv(await tmp('engine-home'));
  refs = await pushStackedImages(registry, await tmp('engine-images'), 'engine', [BASE, APP], { one: [0], two: [0, 1] });
});

after(async () => {
  await registry?.stop();
  await tmpDirs.cleanup();
});

const cli = (...args: string[]): Promise<CliResult> => runCli(args, env);
async function ok(...args: string[]): Promise<string> {
  const r = await cli(...args);
  assert.equal(r.code, 0, `stratum ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const isMounted = async (dir: string) => (await mountPoints()).includes(dir);
const infoJson = async (store: string) => JSON.parse(await ok('info', '--store', store, '--format', 'json'));
const duBytes = async (dir: string) => Number((await run('du', ['-s', '-B1', dir])).stdout.split('\t')[0]);

describe('the store remembers its storage driver', () => {
  test('pull with --snapshotter native, then every other command without flags uses native', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp('engine-native');
    await ok('pull', '--store', store, '--snapshotter', 'vfs', refs.two.reference); // Docker's name for native
    assert.equal(JSON.parse(await readFile(join(store, 'stratum.json'), 'utf8'))['storage-driver'], 'native');
    const info = await infoJson(store);
    assert.equal(info.Driver, 'native');
    assert.match(info.DriverChosen, /store's driver/);

    const dir = join(await tmp('engine-native-mnt'), 'rootfs');
    const mounted = await ok('mount', '--store', store, '--rw', 'K', refs.two.reference, dir);
    assert.match(mounted, /writable K, native/);
    assert.equal(existsSync(join(store, 'snapshots', 'overlay')), false, 'nothing was unpacked again into overlay');
    await writeFile(join(dir, 'app', 'new.txt'), 'made in K\n');
    // commit finds K on native without being told.
    const id = (await ok('commit', '--store', store, 'K', 'engine/native-commit:1')).trim();
    assert.match(id, /^sha256:[0-9a-f]{64}$/);
    await ok('unmount', '--store', store, dir);
    const ls = await ok('snapshot', '--store', store, 'ls');
    assert.match(ls, /^K\s+sha256:\S+\s+active\s+native$/m);
    // An override is used for that command only, and says so.
    const over = await cli('snapshot', '--store', store, '--snapshotter', 'overlay', 'ls');
    assert.equal(over.code, 0, over.stderr);
    assert.equal(JSON.parse(await readFile(join(store, 'stratum.json'), 'utf8'))['storage-driver'], 'native');
  });

  test('an unknown driver name is refused with the names and aliases', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp('engine-badname');
    const r = await cli('pull', '--store', store, '--snapshotter', 'devicemapper', refs.one.reference);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /devicemapper/);
    assert.match(r.stderr, /overlay2/);
  });

  test('a store on btrfs picks btrfs; inspect shows the driver data', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const fs = await mountLoopBtrfs(512);
    if (typeof fs === 'string') return t.skip(fs);
    try {
      const store = join(fs.mnt, 'store');
      await ok('pull', '--store', store, refs.one.reference);
      const info = await infoJson(store);
      assert.equal(info.Driver, 'btrfs');
      assert.equal(info.BackingFilesystem, 'btrfs');
      const [inspect] = JSON.parse(await ok('inspect', '--store', store, refs.one.reference));
      assert.equal(inspect.GraphDriver.Name, 'btrfs');
      assert.equal(inspect.Unpacked, true);
      assert.deepEqual(inspect.ChainIDs, refs.one.chain);
    } finally {
      await deleteSubvolumesUnder(fs.mnt).catch(() => {});
      await (fs as LoopBtrfs).unmount();
    }
  });

  test('a store on an overlayfs: fuse-overlayfs is chosen where it mounts (else native), and overlay is refused at pull time with Docker’s message', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const base = await tmp('engine-on-overlay');
    const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((d) => join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, merged]) await mkdir(d);
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
    try {
      const refused = await cli('pull', '--store', join(merged, 'refused'), '--snapshotter', 'overlay2', refs.one.reference);
      assert.equal(refused.code, 1, refused.stdout);
      assert.match(refused.stderr, /'overlay' is not supported over overlayfs/);
      const store = join(merged, 'store');
      await ok('pull', '--store', store, refs.one.reference);
      // Docker's priority: overlay2 is refused over overlayfs, fuse-overlayfs is next, vfs last.
      const fuseMissing = await fuseOverlayfsMissing();
      if (fuseMissing) t.diagnostic(`LOUD: fuse-overlayfs cannot be chosen here (${fuseMissing}): native expected`);
      assert.equal((await infoJson(store)).Driver, fuseMissing ? 'native' : 'fuse-overlayfs');
      const dir = join(base, 'rw');
      await ok('mount', '--store', store, '--rw', 'W', refs.one.reference, dir);
      await writeFile(join(dir, 'etc', 'x'), 'x');
      await ok('unmount', '--store', store, dir);
    } finally {
      await run('umount', ['-R', merged]).catch(() => run('umount', ['-l', merged]));
    }
  });
});

describe('the mount table', () => {
  test('unmount refuses a mount stratum did not make, and a path never mounted; the foreign mount stays', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp('engine-foreign');
    await ok('pull', '--store', store, refs.one.reference);
    const foreign = await tmp('engine-tmpfs');
    await run('mount', ['-t', 'tmpfs', 'tmpfs', foreign]);
    try {
      const r = await cli('unmount', '--store', store, foreign);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /a mount point that stratum did not make .*left as it is \(ERR_FAILED_PRECONDITION\)/);
      assert.equal(await isMounted(foreign), true);
      const never = await cli('unmount', '--store', store, join(store, 'nowhere'));
      assert.equal(never.code, 1);
      assert.match(never.stderr, /not mounted by stratum/);
      // Nor does mount go over it.
      const over = await cli('mount', '--store', store, refs.one.reference, foreign);
      assert.equal(over.code, 1);
      assert.match(over.stderr, /already a mount point that stratum did not make/);
    } finally {
      await run('umount', [foreign]);
    }
  });

  test('snapshot rm refuses a mounted snapshot unless --force; commit unmounts first; a stale record is forgotten by gc', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp('engine-mounted');
    await ok('pull', '--store', store, refs.one.reference);
    const mnt = await tmp('engine-mounted-mnt');
    const dir = join(mnt, 'rw');
    await ok('mount', '--store', store, '--rw', 'M', refs.one.reference, dir);
    const refused = await cli('snapshot', '--store', store, 'rm', 'M');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /snapshot "M" is mounted at .*rw: unmount it first \(or remove with --force\)/);
    assert.equal(await isMounted(dir), true);

    // commit of the snapshot: the mount goes first, so no overlay stays on a committed upper.
    await writeFile(join(dir, 'etc', 'added'), 'y');
    const committed = await cli('snapshot', '--store', store, 'commit', 'M-done', 'M');
    assert.equal(committed.code, 0, committed.stderr);
    assert.match(committed.stderr, /unmounted .*rw before the commit/);
    assert.equal(await isMounted(dir), false);

    // --force unmounts, then removes.
    const dir2 = join(mnt, 'view2');
    await ok('snapshot', '--store', store, 'prepare', 'P', 'M-done', '--target', dir2);
    assert.equal(await isMounted(dir2), true);
    const forced = await cli('snapshot', '--store', store, 'rm', '--force', 'P');
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(await isMounted(dir2), false);

    // A record whose mount went away behind stratum's back (a manual umount): gc forgets it and
    // removes the view it owned.
    const dir3 = join(mnt, 'ro');
    await ok('mount', '--store', store, refs.one.reference, dir3);
    await run('umount', [dir3]);
    const gc = await ok('gc', '--store', store);
    assert.match(gc, new RegExp(`forgot mount ${dir3.replace(/[/.]/g, '\\$&')} \\(no longer mounted\\)`));
    assert.doesNotMatch(await ok('snapshot', '--store', store, 'ls'), /^view-/m);
    await ok('snapshot', '--store', store, 'rm', 'M-done');
  });
});

describe('gc and df see the snapshots', () => {
  test('rmi + gc leaves no snapshot, df agrees with du within 1%, and gc keeps what images and mounts need', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp('engine-gc');
    await ok('pull', '--store', store, refs.one.reference);
    await ok('pull', '--store', store, refs.two.reference);
    const dfJson = JSON.parse(await ok('df', '-v', '--store', store, '--format', 'json'));
    assert.equal(dfJson.Snapshots.length, 2, 'one snapshot per chainID, shared');
    const two = dfJson.Images.find((i: { Name: string }) => i.Name.endsWith('engine/two:1'));
    assert.ok(two.Size > 5 * 1024 * 1024, JSON.stringify(two));
    assert.ok(two.SharedSize > 3 * 1024 * 1024, 'the base layer is shared with engine/one');
    const total = dfJson.Blobs.Size + dfJson.SnapshotSize + dfJson.PartialDownloads.Size;
    const du = await duBytes(store);
    assert.ok(Math.abs(du - total) / du < 0.01, `df ${total} vs du ${du}`);

    // gc with both images: nothing to take.
    assert.match(await ok('gc', '--store', store, '--dry-run'), /Would reclaim: 0B/);

    // A mount keeps its image's chain even after rmi.
    const dir = join(await tmp('engine-gc-mnt'), 'ro');
    await ok('mount', '--store', store, refs.two.reference, dir);
    await ok('rmi', '--store', store, refs.one.reference, refs.two.reference);
    const kept = await ok('gc', '--store', store);
    assert.doesNotMatch(kept, /removed snapshot/);
    assert.equal(await readFile(join(dir, 'app', 'main.txt'), 'utf8'), 'app layer\n');
    await ok('unmount', '--store', store, dir);

    const removed = await ok('gc', '--store', store);
    assert.match(removed, new RegExp(`removed snapshot ${refs.two.chain[1]}`));
    assert.match(removed, new RegExp(`removed snapshot ${refs.two.chain[0]}`));
    const after = JSON.parse(await ok('df', '-v', '--store', store, '--format', 'json'));
    assert.equal(after.Snapshots.length, 0);
    assert.equal(after.Blobs.Count, 0);
    const duAfter = await duBytes(store);
    assert.ok(duAfter < 1024 * 1024, `store is ${duAfter} bytes after rmi + gc`);
  });

  test('gc --all untags images no mount uses', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp('engine-gc-all');
    await ok('pull', '--store', store, refs.one.reference);
    await ok('pull', '--store', store, refs.two.reference);
    const dir = join(await tmp('engine-gc-all-mnt'), 'ro');
    await ok('mount', '--store', store, refs.one.reference, dir);
    const out = await ok('gc', '--store', store, '--all');
    assert.match(out, /Untagged: .*engine\/two:1/);
    assert.doesNotMatch(out, /Untagged: .*engine\/one:1/);
    assert.match(await ok('images', '--store', store), /engine\/one/);
    await ok('unmount', '--store', store, dir);
  });
});

describe('the library', () => {
  test('Engine.open alone: pull, prepare, mount, commit an image, export; snapshots by key on the store’s driver', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const root = await tmp('engine-lib');
    const engine = await Engine.open({ root, env });
    try {
      const pulled = await engine.pull(refs.two.reference);
      const driver = await engine.driver();
      assert.equal(pulled.snapshotter, driver.name);
      const dir = join(await tmp('engine-lib-mnt'), 'rootfs');
      const record = await engine.mount(refs.two.reference, dir, { rw: 'build' });
      assert.equal(record.readonly, false);
      await writeFile(join(dir, 'app', 'built.txt'), 'built\n');
      const image = await engine.commitImage('build', 'engine/lib:1', { message: 'built' });
      await engine.unmount(dir);
      const history = await engine.history('engine/lib:1');
      assert.equal(history[0]!.comment, 'built');
      const chunks: Buffer[] = [];
      const { Writable } = await import('node:stream');
      await engine.export('engine/lib:1', new Writable({ write: (c, _e, cb) => void (chunks.push(c), cb()) }));
      assert.ok(Buffer.concat(chunks).includes(Buffer.from('app/built.txt')));
      assert.equal((await engine.inspect('engine/lib:1')).id, image.config.digest);
      const inspect = await engine.inspect(refs.two.reference);
      assert.equal(inspect.graphDriver.unpacked, true);
      if (driver.name === 'overlay') {
        assert.ok(inspect.graphDriver.data.UpperDir && inspect.graphDriver.data.LowerDir && inspect.graphDriver.data.WorkDir);
        assert.equal(inspect.graphDriver.data.LowerDir!.split(':').length, 1, 'the base layer below the top one');
      }
    } finally {
      await engine.close();
    }
  });
});
