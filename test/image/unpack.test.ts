/**
 * End to end: `stratum pull` unpacks layers into committed snapshots named by chainID (overlay
 * and native), shares them between images, survives two pulls at once, refuses a wrong diffID,
 * and applies whiteouts and opaque markers of later layers to earlier ones even though overlay
 * layers are extracted in parallel (containerd issue 13030). Real registry, real mounts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { chainIds, type Digest } from '../../src/oci/digest.js';
import { OciStore } from '../../src/content/store.js';
import { loadImageByName } from '../../src/image/image.js';
import { unpackLayers, type UnpackEvent } from '../../src/image/unpack.js';
import { mountImage, unmountImage } from '../../src/image/rootfs.js';
import { openSnapshotter } from '../../src/snapshotter/index.js';
import { erofsUnavailable } from '../../src/snapshotter/erofs/erofs.js';
import { buildLayer, random, type BuiltLayer, type EntrySpec } from '../fixtures/layers.js';
import { writeOciLayout } from '../fixtures/layout.js';
import { pushOciLayout } from '../fixtures/push.js';
import { checkExpectations, type Expectation } from '../fixtures/proof-images.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { CLI, jsonEvents, parseSnapshotLs, runCli, type CliResult, type SnapshotLsRow } from '../helpers/cli.js';
import { lgetxattrs } from '../../src/sys/native.js';
import { TempDirs } from '../helpers/tmp.js';
import { umociUnpack } from '../helpers/tools.js';
import { deleteSubvolumesUnder, mountLoopBtrfs } from '../helpers/btrfs.js';
import { isSubvolume } from '../../src/snapshotter/btrfs/btrfs.js';
import { assertSameTree, snapshotTree } from '../helpers/tree.js';
import type { ImageConfig } from '../../src/oci/types.js';

const exec = promisify(execFile);
const tmpDirs = new TempDirs();
const tmp = tmpDirs;

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: overlay mounts, owners, trusted xattrs';
  for (const bin of ['/usr/bin/skopeo', '/usr/bin/umoci', '/usr/bin/docker-registry']) if (!existsSync(bin)) return `${bin} is not installed`;
  return undefined;
}
const MISSING = missing();

interface Pushed {
  reference: string;
  layers: BuiltLayer[];
  /** The config's rootfs.diff_ids (what chainIDs are computed from). */
  diffIds: Digest[];
}

let registry: TestRegistry | undefined;
let env: NodeJS.ProcessEnv = {};
let workDir = '';
const images: Record<string, Pushed> = {};

async function pushImage(name: string, layers: BuiltLayer[], config?: Partial<ImageConfig>): Promise<Pushed> {
  const layout = await writeOciLayout(join(workDir, name), [{ tag: '1', layers, ...(config ? { config } : {}) }]);
  await pushOciLayout(layout.dir, '1', registry!, `unpack/${name}:1`, 'oci');
  return { reference: `${registry!.host}/unpack/${name}:1`, layers, diffIds: layout.manifests[0]!.config.rootfs.diff_ids };
}

const layer = (entries: EntrySpec[], gzipLevel?: number) => buildLayer(entries, { compression: 'gzip', dir: join(workDir, 'layers'), ...(gzipLevel ? { gzipLevel } : {}) });

// ---- the images -----------------------------------------------------------------------------

const BASE: EntrySpec[] = [
  { type: 'dir', path: 'etc' },
  { type: 'file', path: 'etc/os-release', content: 'ID=unpack-base\n' },
  { type: 'dir', path: 'bin' },
  { type: 'file', path: 'bin/tool', content: random(64 * 1024, 'unpack-tool'), mode: 0o755 },
  { type: 'dir', path: 'var' },
  { type: 'file', path: 'var/old', content: 'old\n' },
];
const APP: EntrySpec[] = [
  { type: 'dir', path: 'app' },
  { type: 'file', path: 'app/main.txt', content: 'app layer\n' },
  { type: 'dir', path: 'var' },
  { type: 'whiteout', path: 'var/old' },
];
const OTHER: EntrySpec[] = [
  { type: 'dir', path: 'other' },
  { type: 'file', path: 'other/file.txt', content: 'other image\n' },
];

/** containerd 13030: a big lower layer (extracted last) and a small upper one hiding parts of it. */
const LOWER_13030: EntrySpec[] = [
  { type: 'dir', path: 'big' },
  { type: 'file', path: 'big/blob.bin', content: random(16 << 20, 'unpack-13030-big') },
  { type: 'file', path: 'gone.txt', content: 'deleted by the upper layer\n' },
  { type: 'dir', path: 'victim' },
  { type: 'file', path: 'victim/a', content: 'a\n' },
  { type: 'file', path: 'victim/b', content: 'b\n' },
  { type: 'dir', path: 'victim/sub' },
  { type: 'file', path: 'victim/sub/c', content: 'c\n' },
  { type: 'dir', path: 'opq-before' },
  { type: 'file', path: 'opq-before/x', content: 'x\n' },
  { type: 'dir', path: 'opq-before/sub' },
  { type: 'file', path: 'opq-before/sub/z', content: 'z\n' },
  { type: 'dir', path: 'opq-after' },
  { type: 'file', path: 'opq-after/x', content: 'x\n' },
  { type: 'file', path: 'opq-after/keep', content: 'lower keep\n' },
  { type: 'dir', path: 'replaced' },
  { type: 'file', path: 'replaced/f', content: 'f\n' },
  { type: 'dir', path: 'nodir', mode: 0o750, uid: 1000, gid: 1000 },
  { type: 'file', path: 'nodir/x', content: 'x\n' },
  { type: 'file', path: 'big/tail.txt', content: 'last entry of the lower layer\n' },
];
const UPPER_13030: EntrySpec[] = [
  { type: 'whiteout', path: 'gone.txt' },
  { type: 'dir', path: 'victim' },
  { type: 'whiteout', path: 'victim/a' },
  { type: 'whiteout', path: 'victim/sub' },
  // marker before this layer's entries in the directory
  { type: 'dir', path: 'opq-before' },
  { type: 'opaque', path: 'opq-before' },
  { type: 'file', path: 'opq-before/new', content: 'upper new\n' },
  // marker after them: they stay, the lower ones go
  { type: 'dir', path: 'opq-after' },
  { type: 'file', path: 'opq-after/keep', content: 'upper keep\n' },
  { type: 'file', path: 'opq-after/own2', content: 'upper own2\n' },
  { type: 'opaque', path: 'opq-after' },
  { type: 'whiteout', path: 'big/tail.txt' },
  { type: 'whiteout', path: 'replaced' },
  { type: 'file', path: 'replaced', content: 'now a file\n' },
  // an opaque marker for a directory this layer has no entry for
  { type: 'opaque', path: 'nodir' },
  { type: 'file', path: 'zz-last.txt', content: 'last entry of the upper layer\n' },
];
const EXPECT_13030: Expectation[] = [
  { path: 'gone.txt', absent: true },
  { path: 'victim', children: ['b'] },
  { path: 'opq-before', children: ['new'] },
  { path: 'opq-after', children: ['keep', 'own2'] },
  { path: 'opq-after/keep', content: 'upper keep\n' },
  { path: 'big', children: ['blob.bin'] },
  { path: 'replaced', content: 'now a file\n' },
  { path: 'nodir', children: [] },
  { path: 'nodir', mode: 0o750, uid: 1000, gid: 1000 },
  { path: 'zz-last.txt', content: 'last entry of the upper layer\n' },
];

/** Same-layer rules: whiteouts never hide the layer's own entries, the last duplicate wins, opaque anywhere. */
const LOWER_RULES: EntrySpec[] = [
  { type: 'dir', path: 'd' },
  { type: 'file', path: 'd/lower1', content: 'l1\n' },
  { type: 'file', path: 'd/lower2', content: 'l2\n' },
  { type: 'dir', path: 'm' },
  { type: 'file', path: 'm/x', content: 'x\n' },
  { type: 'file', path: 'm/y', content: 'y\n' },
  { type: 'file', path: 'dup', content: 'lower\n' },
];
const UPPER_RULES: EntrySpec[] = [
  { type: 'dir', path: 'd' },
  { type: 'file', path: 'd/own', content: 'own\n' },
  { type: 'whiteout', path: 'd/own' },
  { type: 'whiteout', path: 'd/own2' },
  { type: 'file', path: 'd/own2', content: 'own2\n' },
  { type: 'whiteout', path: 'd/lower1' },
  { type: 'dir', path: 'd/owndir' },
  { type: 'file', path: 'd/owndir/f', content: 'f\n' },
  { type: 'whiteout', path: 'd/owndir' },
  { type: 'dir', path: 'm' },
  { type: 'file', path: 'm/a', content: 'a\n' },
  { type: 'opaque', path: 'm' },
  { type: 'file', path: 'm/b', content: 'b\n' },
  { type: 'file', path: 'dup', content: 'one\n' },
  { type: 'file', path: 'dup', content: 'two\n' },
  { type: 'file', path: 'dupmode', content: 'first\n', mode: 0o600 },
  { type: 'file', path: 'dupmode', content: 'second\n', mode: 0o640, uid: 1000 },
  { type: 'dir', path: 'x1' },
  { type: 'file', path: 'x1', content: 'file wins\n' },
  { type: 'file', path: 'x2', content: 'replaced by a dir\n' },
  { type: 'dir', path: 'x2' },
  { type: 'file', path: 'x2/in', content: 'in\n' },
  { type: 'file', path: 'x3', content: 'replaced by a symlink\n' },
  { type: 'symlink', path: 'x3', target: 'dup' },
  { type: 'dir', path: 'x4', mode: 0o700 },
  { type: 'dir', path: 'x4', mode: 0o750, uid: 1000 },
];
const EXPECT_RULES: Expectation[] = [
  { path: 'd', children: ['lower2', 'own', 'own2', 'owndir'] },
  { path: 'd/own', content: 'own\n' },
  { path: 'd/own2', content: 'own2\n' },
  { path: 'd/owndir', children: ['f'] },
  { path: 'm', children: ['a', 'b'] },
  { path: 'dup', content: 'two\n' },
  { path: 'dupmode', content: 'second\n' },
  { path: 'dupmode', mode: 0o640, uid: 1000 },
  { path: 'x1', content: 'file wins\n' },
  { path: 'x2', children: ['in'] },
  { path: 'x3', symlink: 'dup' },
  { path: 'x4', mode: 0o750, uid: 1000 },
];

/** A whiteout inside a directory that only this layer has (nothing below to hide). */
const FRESH_DIR_WHITEOUT: EntrySpec[] = [
  { type: 'dir', path: 'fresh' },
  { type: 'file', path: 'fresh/kept', content: 'kept\n' },
  { type: 'whiteout', path: 'fresh/ghost' },
];
/** Whiteouts and an opaque marker in an image's only layer: nothing below, so they must leave no trace. */
const SINGLE_LAYER_WHITEOUTS: EntrySpec[] = [
  { type: 'dir', path: 'd' },
  { type: 'file', path: 'd/x', content: 'x\n' },
  { type: 'opaque', path: 'd' },
  { type: 'whiteout', path: 'ghost' },
  { type: 'file', path: 'top', content: 'top\n' },
];

before(async () => {
  if (MISSING) return;
  registry = await sharedRegistry();
  const home = await tmp.make('unpack-home');
  env = { XDG_CONFIG_HOME: home, DOCKER_CONFIG: home, STRATUM_CONFIG: '', STRATUM_SNAPSHOTTER: '', STRATUM_SNAPSHOT_ROOT: '' };
  workDir = await tmp.make('unpack-images');
  const [base, app, other, big1, big2, lower13030, upper13030, lowerRules, upperRules, emptyWh, freshWh, single] = await Promise.all([
    layer(BASE),
    layer(APP),
    layer(OTHER),
    layer([{ type: 'dir', path: 'one' }, { type: 'file', path: 'one/blob', content: random(6 << 20, 'unpack-concurrent-1') }], 1),
    layer([{ type: 'dir', path: 'two' }, { type: 'file', path: 'two/blob', content: random(3 << 20, 'unpack-concurrent-2') }], 1),
    layer(LOWER_13030, 1),
    layer(UPPER_13030),
    layer(LOWER_RULES),
    layer(UPPER_RULES),
    layer([
      { type: 'dir', path: 'd' },
      { type: 'file', path: 'd/fine', content: 'fine\n' },
      { type: 'raw', header: { name: 'd/.wh.', type: 'file', mode: 0o644, uid: 0, gid: 0 } },
    ]),
    layer(FRESH_DIR_WHITEOUT),
    layer(SINGLE_LAYER_WHITEOUTS),
  ]);
  const rootlessLower = await layer([
    { type: 'dir', path: 'keep' },
    { type: 'file', path: 'keep/a', content: 'a\n' },
    { type: 'dir', path: 'opq' },
    { type: 'file', path: 'opq/old', content: 'old\n' },
    { type: 'file', path: 'gone', content: 'gone\n' },
  ]);
  const rootlessUpper = await layer([
    { type: 'whiteout', path: 'gone' },
    { type: 'dir', path: 'opq' },
    { type: 'opaque', path: 'opq' },
    { type: 'file', path: 'opq/new', content: 'new\n' },
  ]);
  const many = await Promise.all(Array.from({ length: 9 }, (_, i) => layer([{ type: 'file', path: `layer-${i}.txt`, content: random(32 * 1024, `many-${i}`) }])));
  const pushed = await Promise.all([
    pushImage('two', [base, app]),
    pushImage('share', [base, other]),
    pushImage('concurrent', [big1, big2, other]),
    // layer 2's diff_id in the config is another layer's: its blob digest is right, its content is not what the config says
    pushImage('baddiff', [base, app], { rootfs: { type: 'layers', diff_ids: [base.diffId, other.diffId] } }),
    pushImage('w13030', [lower13030, upper13030]),
    pushImage('rules', [lowerRules, upperRules]),
    pushImage('emptywh', [base, emptyWh]),
    pushImage('freshwh', [base, freshWh]),
    pushImage('single', [single]),
    pushImage('many', many),
    pushImage('rootless', [rootlessLower, rootlessUpper]),
  ]);
  for (const [i, name] of ['two', 'share', 'concurrent', 'baddiff', 'w13030', 'rules', 'emptywh', 'freshwh', 'single', 'many', 'rootless'].entries()) images[name] = pushed[i]!;
});

after(async () => {
  await registry?.stop();
  await tmpDirs.cleanup();
});

// ---- helpers ----------------------------------------------------------------------------------

const pull = (store: string, ref: string, ...flags: string[]): Promise<CliResult> => runCli(['pull', '--store', store, ...flags, ref], env);

async function snapshotLs(store: string, snapshotter: string, ...filters: string[]): Promise<SnapshotLsRow[]> {
  const r = await runCli(['snapshot', '--store', store, '--snapshotter', snapshotter, 'ls', ...filters], env);
  assert.equal(r.code, 0, r.stderr);
  return parseSnapshotLs(r.stdout);
}

const events = jsonEvents;

/** Mounts the image read-only with the CLI, snapshots the merged tree, and unmounts. */
async function mergedTree(store: string, ref: string, snapshotter: string) {
  const dir = await tmp.make(`merged-${snapshotter}`);
  const m = await runCli(['mount', '--store', store, '--snapshotter', snapshotter, ref, dir], env);
  assert.equal(m.code, 0, m.stderr);
  try {
    return await snapshotTree(dir);
  } finally {
    const u = await runCli(['unmount', '--store', store, '--snapshotter', snapshotter, dir], env);
    assert.equal(u.code, 0, u.stderr);
  }
}

/** skopeo copy + `umoci raw unpack` of the image: the reference rootfs. */
async function umociTree(ref: string) {
  return snapshotTree(await umociUnpack(ref, await tmp.make('umoci')));
}

async function dataDirs(store: string, snapshotter: string): Promise<string[]> {
  return readdir(join(store, 'snapshots', snapshotter, 'snapshots')).catch(() => []);
}

// ---- tests ------------------------------------------------------------------------------------

describe('stratum pull unpacks into committed snapshots named by chainID', () => {
  for (const snapshotter of ['overlay', 'native', 'erofs'] as const) {
    test(`${snapshotter}: one committed snapshot per layer, shared base layer reused, content through a real mount`, async (t) => {
      if (MISSING) return t.skip(MISSING);
      const noErofs = snapshotter === 'erofs' ? await erofsUnavailable() : undefined;
      if (noErofs) return t.skip(`LOUD SKIP: erofs: ${noErofs}`);
      const store = await tmp.make(`store-${snapshotter}`);
      const two = images.two!;
      const chain = chainIds(two.diffIds);
      // overlay is the default snapshotter here (root, overlay in the kernel); native is asked for.
      const r = await pull(store, two.reference, '--json', ...(snapshotter !== 'overlay' ? ['--snapshotter', snapshotter] : []));
      assert.equal(r.code, 0, r.stderr);
      const done = events(r).at(-1)!;
      assert.equal(done.type, 'done');
      assert.equal(done.snapshotter, snapshotter);
      assert.equal(done.chainId, chain[1]);
      assert.equal(done.layersExtracted, 2);

      const rows = await snapshotLs(store, snapshotter);
      assert.deepEqual(
        rows,
        [
          { name: chain[0]!, parent: '', kind: 'committed' },
          { name: chain[1]!, parent: chain[0]!, kind: 'committed' },
        ].sort((a, b) => a.name.localeCompare(b.name)),
      );

      const tree = await mergedTree(store, two.reference, snapshotter);
      assert.deepEqual(
        checkExpectations(tree, [
          { path: 'etc/os-release', content: 'ID=unpack-base\n' },
          { path: 'app/main.txt', content: 'app layer\n' },
          { path: 'var', children: [] },
          { path: 'bin/tool', mode: 0o755 },
        ]),
        [],
      );

      // A second image on the same base layer: the base chainID is reused, not extracted again.
      const share = images.share!;
      const shareChain = chainIds(share.diffIds);
      assert.equal(shareChain[0], chain[0]);
      const s = await pull(store, share.reference, '--json', '--snapshotter', snapshotter);
      assert.equal(s.code, 0, s.stderr);
      const unpacked = events(s).filter((e) => e.type === 'unpacked');
      assert.deepEqual(
        unpacked.map((e) => [e.chainId, e.existed]),
        [
          [shareChain[0], true],
          [shareChain[1], false],
        ],
      );
      assert.equal(events(s).at(-1)!.layersExtracted, 1);
      const after = await snapshotLs(store, snapshotter, 'kind==committed');
      assert.deepEqual(after.map((x) => x.name).sort(), [...chain, shareChain[1]!].sort());
      assert.equal(after.find((x) => x.name === shareChain[1])!.parent, chain[0]);
      assert.deepEqual(await snapshotLs(store, snapshotter, 'kind==active'), []);
      assert.deepEqual(await snapshotLs(store, snapshotter, 'kind==view'), []);
    });
  }

  test('--no-unpack leaves no snapshots', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp.make('store-nounpack');
    const r = await pull(store, images.two!.reference, '--no-unpack', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!events(r).some((e) => e.type === 'unpacked' || e.type === 'extracting'), 'no unpack events');
    assert.equal(events(r).at(-1)!.chainId, undefined);
    assert.equal(existsSync(join(store, 'snapshots')), false, 'no snapshot root created by a --no-unpack pull');
    assert.deepEqual(await snapshotLs(store, 'overlay'), []);
    assert.deepEqual(await dataDirs(store, 'overlay'), []);
  });

  test('--concurrency 9 on a 9-layer image: all layers at once, every one committed, nothing on stderr (no listener warnings)', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp.make('store-many');
    const image = images.many!;
    const r = await pull(store, image.reference, '--json', '--concurrency', '9');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(events(r).at(-1)!.layersExtracted, 9);
    const rows = await snapshotLs(store, 'overlay');
    assert.deepEqual(rows.map((x) => x.name).sort(), [...chainIds(image.diffIds)].sort());
  });

  test('in a user namespace (rootless overlay, userxattr): whiteout and opaque marker written as user.overlay.*, merged view right', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp.make('store-userns');
    const mnt = await tmp.make('mnt-userns');
    const log = join(await tmp.make('log-userns'), 'pull.json');
    const image = images.rootless!;
    // uid 0 inside maps to root outside (the layer's files are all root's); trusted.* xattrs are
    // still off limits in the namespace, so the snapshotter must choose userxattr.
    const script = [
      'set -e',
      `node ${JSON.stringify(CLI)} pull --store "$1" --snapshotter overlay --json "$3" > "$4"`,
      `node ${JSON.stringify(CLI)} mount --store "$1" --snapshotter overlay "$3" "$2" > /dev/null`,
      'find "$2" -mindepth 1 -printf "%P\\n" | sort',
      `node ${JSON.stringify(CLI)} unmount --store "$1" --snapshotter overlay "$2" > /dev/null`,
    ].join('\n');
    let r;
    try {
      r = await exec('unshare', ['--user', '--map-root-user', '--mount', 'bash', '-c', script, 'bash', store, mnt, image.reference, log], { env: { ...process.env, ...env } });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      if (/unshare failed|Operation not permitted/.test(e.stderr ?? '') && !existsSync(log)) return t.skip(`LOUD SKIP: cannot create a user namespace here: ${e.stderr}`);
      throw new Error(`${e.message}\n${e.stderr ?? ''}`);
    }
    assert.deepEqual(r.stdout.trim().split('\n'), ['keep', 'keep/a', 'opq', 'opq/new']);
    // On disk (read from outside the namespace): the upper layer's opaque marker is user.overlay.opaque.
    const chain = chainIds(image.diffIds);
    assert.equal(JSON.parse((await readFile(log, 'utf8')).trim().split('\n').at(-1)!).chainId, chain[1]);
    const upperDirs = (await readdir(join(store, 'snapshots', 'overlay', 'snapshots'))).map((id) => join(store, 'snapshots', 'overlay', 'snapshots', id, 'fs', 'opq'));
    const marked = upperDirs.filter((d) => existsSync(d)).map((d) => lgetxattrs(d));
    assert.ok(marked.some((x) => x['user.overlay.opaque']?.toString() === 'y'), JSON.stringify(marked.map((x) => Object.keys(x))));
    assert.ok(marked.every((x) => x['trusted.overlay.opaque'] === undefined));
  });

  test('two pulls of one image into one store at once: both succeed, each chainID extracted and committed once', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp.make('store-concurrent');
    const image = images.concurrent!;
    const chain = chainIds(image.diffIds);
    const [a, b] = await Promise.all([pull(store, image.reference, '--json'), pull(store, image.reference, '--json')]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const fresh = [...events(a), ...events(b)].filter((e) => e.type === 'unpacked' && e.existed === false).map((e) => e.chainId);
    assert.deepEqual(fresh.sort(), [...chain].sort(), 'every chainID extracted exactly once over both processes');
    assert.equal(Number(events(a).at(-1)!.layersExtracted) + Number(events(b).at(-1)!.layersExtracted), chain.length);
    for (const r of [a, b]) assert.equal(events(r).at(-1)!.chainId, chain.at(-1));

    const rows = await snapshotLs(store, 'overlay');
    assert.deepEqual(rows.map((x) => x.name).sort(), [...chain].sort());
    assert.ok(rows.every((x) => x.kind === 'committed'), JSON.stringify(rows));
    assert.ok(!rows.some((x) => x.name.startsWith('extract-')));
    // Nothing is left behind on disk either: one data directory per snapshot after cleanup.
    assert.equal((await runCli(['snapshot', '--store', store, 'cleanup'], env)).code, 0);
    assert.equal((await dataDirs(store, 'overlay')).length, chain.length);
    const tree = await mergedTree(store, image.reference, 'overlay');
    assert.deepEqual(checkExpectations(tree, [{ path: 'one/blob', mode: 0o644 }, { path: 'two/blob', mode: 0o644 }, { path: 'other/file.txt', content: 'other image\n' }]), []);
  });

  test('a config diffID that does not match layer 2: exit 1 naming the layer, layer 2 not committed, nothing active left', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp.make('store-baddiff');
    const image = images.baddiff!;
    const layer2 = image.layers[1]!;
    const r = await pull(store, image.reference);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`layer 2/2 \\(${layer2.digest}\\).*diffID.*digest mismatch: expected ${image.diffIds[1]}, got ${layer2.diffId}.*\\(ERR_DIGEST_MISMATCH\\)`));
    const wrongChain = chainIds(image.diffIds);
    const realChain = chainIds([image.diffIds[0]!, layer2.diffId]);
    const rows = await snapshotLs(store, 'overlay');
    const names = rows.map((x) => x.name);
    assert.ok(!names.includes(wrongChain[1]!), 'layer 2 committed under the config chainID');
    assert.ok(!names.includes(realChain[1]!), 'layer 2 committed under its real chainID');
    assert.deepEqual(rows.filter((x) => x.kind !== 'committed'), [], 'no active or view snapshot left');
    // Layer 1 is fine and may stay committed; nothing else may.
    assert.ok(names.every((n) => n === wrongChain[0]), JSON.stringify(names));
    // The image is not tagged.
    assert.equal((await runCli(['inspect', '--store', store, image.reference], env)).code, 1);
    assert.equal((await runCli(['snapshot', '--store', store, 'cleanup'], env)).code, 0);
    assert.equal((await dataDirs(store, 'overlay')).length, names.length);
  });
});

describe('later layers hide what earlier ones hold, though overlay extracts layers in parallel (containerd 13030)', () => {
  test('pull + overlay: the small upper layer is extracted before the big lower one, and the merged view equals umoci and the expectations', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const image = images.w13030!;
    const [lower, upper] = image.layers as [BuiltLayer, BuiltLayer];
    const store = await tmp.make('store-13030');
    const r = await pull(store, image.reference, '--json');
    assert.equal(r.code, 0, r.stderr);
    const evs = events(r);
    const extracted = (l: BuiltLayer) => evs.findIndex((e) => e.type === 'extracting' && e.digest === l.digest && e.current === l.size);
    assert.ok(extracted(upper) >= 0 && extracted(lower) >= 0, 'both layers report full extraction');
    assert.ok(extracted(upper) < extracted(lower), 'the upper layer finished reading before the lower one: the parallel case is exercised');
    const unpacked = evs.filter((e) => e.type === 'unpacked').map((e) => e.digest);
    assert.deepEqual(unpacked, [lower.digest, upper.digest], 'committed in order');

    const tree = await mergedTree(store, image.reference, 'overlay');
    assert.deepEqual(checkExpectations(tree, EXPECT_13030), []);
    assertSameTree(await umociTree(image.reference), tree, { names: ['umoci', 'stratum overlay'] });
  });

  test('unpackLayers with the lower blob held back until the upper layer is fully extracted: upper not committed before lower, merged view right', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const image = images.w13030!;
    const [lower, upper] = image.layers as [BuiltLayer, BuiltLayer];
    const storeDir = await tmp.make('store-13030-lib');
    const fetched = await pull(storeDir, image.reference, '--no-unpack');
    assert.equal(fetched.code, 0, fetched.stderr);
    const store = await OciStore.open(storeDir);
    const snapshotter = await openSnapshotter('overlay', join(storeDir, 'snapshots', 'overlay'));
    const mountDir = await tmp.make('merged-lib');
    try {
      const stored = await loadImageByName(store, image.reference);
      const chain = chainIds(stored.config.rootfs.diff_ids);
      let releaseLower!: () => void;
      const lowerReady = new Promise<void>((resolve) => (releaseLower = resolve));
      const seen: UnpackEvent[] = [];
      const unpacking = unpackLayers({
        store,
        snapshotter,
        layers: stored.manifest.layers,
        diffIds: stored.config.rootfs.diff_ids,
        subject: image.reference,
        concurrency: 3,
        blobReady: (digest) => (digest === lower.digest ? lowerReady : Promise.resolve()),
        onEvent: (e) => seen.push(e),
      });
      unpacking.catch(() => {});
      try {
        // Wait until the upper layer's own extraction directory holds its last entry.
        const upperDir = await waitFor(async () => {
          let key: string | undefined;
          await snapshotter.walk((i) => void (i.name.endsWith(chain[1]!) && (key = i.name)), 'kind==active');
          if (!key) return undefined;
          const dir = await snapshotter.applyDir(key);
          return (await lstat(join(dir, 'zz-last.txt')).catch(() => undefined)) ? dir : undefined;
        });
        // Its whiteouts are there as overlay whiteouts (char 0/0), waiting for the lower layer.
        const wh = await lstat(join(upperDir, 'gone.txt'));
        assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'gone.txt is an overlay whiteout in the upper layer');
        await assert.rejects(snapshotter.stat(chain[1]!), /ERR_NOT_FOUND|not found/i, 'upper committed before its parent');
        await assert.rejects(snapshotter.stat(chain[0]!), /ERR_NOT_FOUND|not found/i);
        assert.ok(!seen.some((e) => e.type === 'extracting' && e.digest === lower.digest), 'lower started before its blob was released');
      } finally {
        releaseLower();
      }
      const result = await unpacking;
      assert.deepEqual(result, { chainId: chain[1], extracted: 2 });
      assert.deepEqual(seen.filter((e) => e.type === 'unpacked').map((e) => e.digest), [lower.digest, upper.digest]);
      assert.equal((await snapshotter.stat(chain[1]!)).parent, chain[0]);
      await mountImage(store, snapshotter, stored, mountDir);
      try {
        assert.deepEqual(checkExpectations(await snapshotTree(mountDir), EXPECT_13030), []);
      } finally {
        await unmountImage([snapshotter], mountDir);
      }
      const left: string[] = [];
      await snapshotter.walk((i) => void left.push(`${i.kind} ${i.name}`), 'kind==active', 'kind==view');
      assert.deepEqual(left, []);
    } finally {
      await snapshotter.close();
    }
  });

  test('same-layer rules (own entries survive whiteouts and opaque markers anywhere in the tar, last duplicate wins): overlay == native == erofs == expectations', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const image = images.rules!;
    const trees = [];
    const noErofs = await erofsUnavailable();
    if (noErofs) t.diagnostic(`LOUD SKIP of erofs: ${noErofs}`);
    for (const snapshotter of noErofs ? (['overlay', 'native'] as const) : (['overlay', 'native', 'erofs'] as const)) {
      const store = await tmp.make(`store-rules-${snapshotter}`);
      const r = await pull(store, image.reference, '--snapshotter', snapshotter);
      assert.equal(r.code, 0, r.stderr);
      const tree = await mergedTree(store, image.reference, snapshotter);
      assert.deepEqual(checkExpectations(tree, EXPECT_RULES), [], snapshotter);
      trees.push(tree);
    }
    assertSameTree(trees[0]!, trees[1]!, { names: ['overlay', 'native'] });
    if (trees[2]) assertSameTree(trees[0]!, trees[2], { names: ['overlay', 'erofs'] });
  });

  test('btrfs: a store on btrfs unpacks into read-only subvolume snapshots, and the merged view equals native’s and the expectations', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const fs = await mountLoopBtrfs(512);
    if (typeof fs === 'string') return t.skip(`LOUD SKIP: btrfs: ${fs}`);
    try {
      const image = images.rules!;
      const store = join(fs.mnt, 'store');
      const r = await pull(store, image.reference, '--snapshotter', 'btrfs');
      assert.equal(r.code, 0, r.stderr);
      const tree = await mergedTree(store, image.reference, 'btrfs');
      assert.deepEqual(checkExpectations(tree, EXPECT_RULES), []);
      const nativeStore = await tmp.make('store-rules-native-vs-btrfs');
      const n = await pull(nativeStore, image.reference, '--snapshotter', 'native');
      assert.equal(n.code, 0, n.stderr);
      assertSameTree(tree, await mergedTree(nativeStore, image.reference, 'native'), { names: ['btrfs', 'native'] });
      const dirs = await dataDirs(store, 'btrfs');
      assert.equal(dirs.length, image.layers.length);
      for (const d of dirs) {
        const path = join(store, 'snapshots', 'btrfs', 'snapshots', d);
        assert.ok(await isSubvolume(path), `${path} is a subvolume`);
        assert.equal((await exec('btrfs', ['property', 'get', '-ts', path, 'ro'])).stdout.trim(), 'ro=true');
      }
    } finally {
      await deleteSubvolumesUnder(fs.mnt);
      await fs.unmount();
    }
  });

  test('a `.wh.` entry with an empty name is refused: exit 1 naming layer and entry, layer not committed, nothing active left', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const image = images.emptywh!;
    const chain = chainIds(image.diffIds);
    for (const snapshotter of ['overlay', 'native'] as const) {
      const store = await tmp.make(`store-emptywh-${snapshotter}`);
      const r = await pull(store, image.reference, '--snapshotter', snapshotter);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`layer 2/2 \\(${image.layers[1]!.digest}\\).*entry "d/\\.wh\\.": whiteout with an empty name \\(ERR_UNSAFE_ENTRY\\)`));
      const rows = await snapshotLs(store, snapshotter);
      assert.ok(!rows.some((x) => x.name === chain[1]), `${snapshotter}: layer 2 committed`);
      assert.deepEqual(rows.filter((x) => x.kind !== 'committed'), [], `${snapshotter}: active snapshots left`);
    }
  });
});

describe('whiteouts with nothing below them leave no trace in the mounted rootfs', () => {
  test('a whiteout inside a directory the layers below do not have is not listed in the merged view (overlay)', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const image = images.freshwh!;
    const store = await tmp.make('store-freshwh');
    const r = await pull(store, image.reference);
    assert.equal(r.code, 0, r.stderr);
    const dir = await tmp.make('merged-freshwh');
    assert.equal((await runCli(['mount', '--store', store, image.reference, dir], env)).code, 0);
    try {
      assert.deepEqual(await readdir(join(dir, 'fresh')), ['kept']);
    } finally {
      assert.equal((await runCli(['unmount', '--store', store, dir], env)).code, 0);
    }
  });

  test('the view of a single-layer image shows neither whiteout devices nor overlay xattrs, like umoci (overlay)', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const image = images.single!;
    const store = await tmp.make('store-single');
    const r = await pull(store, image.reference);
    assert.equal(r.code, 0, r.stderr);
    const tree = await mergedTree(store, image.reference, 'overlay');
    assert.deepEqual(checkExpectations(tree, [{ path: '.', children: ['d', 'top'] }, { path: 'd', children: ['x'] }, { path: 'd', xattr: 'trusted.overlay.opaque', value: null }]), []);
    assertSameTree(await umociTree(image.reference), tree, { names: ['umoci', 'stratum overlay'] });
  });
});

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
