/**
 * One rule on every backend: the same layers give the same tree on overlay, native and btrfs,
 * with containerd's overlay semantics (its default snapshotter) as the rule:
 * - an entry's parent resolves through symlinks of its own layer, inside the root;
 * - a symlink (or file) of a lower layer in a parent's place is hidden by a new directory;
 * - whiteouts and opaque markers create their missing parents; an opaque root hides nothing;
 * - directories of lower layers keep their times when a later layer adds or deletes in them.
 * Pulled from the real registry with the CLI, compared through real mounts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { buildLayer, type EntrySpec } from '../fixtures/layers.js';
import { writeOciLayout } from '../fixtures/layout.js';
import { pushOciLayout } from '../fixtures/push.js';
import { checkExpectations, type Expectation } from '../fixtures/proof-images.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { isolatedCliEnv, needsRootAndRegistry, runCli } from '../helpers/cli.js';
import { TempDirs } from '../helpers/tmp.js';
import { deleteSubvolumesUnder, mountLoopBtrfs } from '../helpers/btrfs.js';
import { assertSameTree, snapshotTree, type TreeEntry } from '../helpers/tree.js';

const tmp = new TempDirs();
const exec = promisify(execFile);

const MISSING = needsRootAndRegistry();

const OLD = new Date('2020-01-02T03:04:05Z');
const LAYERS: EntrySpec[][] = [
  [
    { type: 'dir', path: 'target', mtime: OLD },
    { type: 'file', path: 'target/t', content: 'in target\n' },
    { type: 'symlink', path: 'a', target: 'target' },
    { type: 'dir', path: 'd', mtime: OLD },
    { type: 'file', path: 'd/f', content: 'd/f\n' },
    { type: 'dir', path: 'other', mtime: OLD },
    { type: 'file', path: 'other/f', content: 'other/f\n' },
    { type: 'file', path: 'other/g', content: 'other/g\n' },
    { type: 'dir', path: 'kept', mtime: OLD, mode: 0o750, uid: 7, gid: 8 },
    { type: 'dir', path: 'kept/sub', mtime: OLD },
    { type: 'file', path: 'kept/old', content: 'old\n' },
    { type: 'file', path: 'plain', content: 'a file below\n' },
  ],
  [
    // umoci repack, a directory replaced by a symlink: the symlink, then a whiteout under it.
    { type: 'symlink', path: 'd', target: 'other' },
    { type: 'whiteout', path: 'd/f' },
    // A lower symlink used as a parent: a directory hides it (containerd overlay; containerd native would follow it).
    { type: 'file', path: 'a/x', content: 'under a\n' },
    // A lower file used as a parent: likewise.
    { type: 'file', path: 'plain/y', content: 'under plain\n' },
    // Additions and deletions in lower directories without an entry for them: their times stay.
    { type: 'file', path: 'kept/new', content: 'new\n' },
    { type: 'whiteout', path: 'kept/old' },
    { type: 'file', path: 'kept/sub/deeper', content: 'deeper\n' },
    // A whiteout under directories that exist nowhere: they are made, empty.
    { type: 'whiteout', path: 'ghost/dir/nothing' },
    // An opaque marker at the root: overlayfs ignores it (the upper root always merges), so every backend keeps the lower entries.
    { type: 'opaque', path: '.' },
  ],
];

const EXPECT: Expectation[] = [
  { path: 'd', symlink: 'other' },
  { path: 'other/f', absent: true },
  { path: 'other/g', content: 'other/g\n' },
  { path: 'a', children: ['x'] },
  { path: 'a/x', content: 'under a\n' },
  { path: 'target', children: ['t'] },
  { path: 'plain', children: ['y'] },
  { path: 'kept', mode: 0o750, uid: 7, gid: 8 },
  { path: 'kept', children: ['new', 'sub'] },
  { path: 'ghost/dir', children: [] },
];

/** Directories the second layer made without an entry: they get the time of the unpack. */
const MADE_NOW = new Set(['.', 'a', 'plain', 'ghost', 'ghost/dir']);

let registry: TestRegistry | undefined;
let env: NodeJS.ProcessEnv = {};
let reference = '';

before(async () => {
  if (MISSING) return;
  registry = await sharedRegistry();
  const home = await tmp.make('one-rule-home');
  env = isolatedCliEnv(home);
  const work = await tmp.make('one-rule');
  const layers = [];
  for (const entries of LAYERS) layers.push(await buildLayer(entries, { compression: 'gzip', dir: join(work, 'layers') }));
  const layout = await writeOciLayout(join(work, 'image'), [{ tag: '1', layers }]);
  await pushOciLayout(layout.dir, '1', registry, 'one-rule/image:1', 'oci');
  reference = `${registry.host}/one-rule/image:1`;
});
after(async () => {
  await registry?.stop();
  await tmp.cleanup();
});

/** `stratum export` of the image, extracted by GNU tar: the tree the tar holds. */
async function exportedTree(store: string, snapshotter: string): Promise<TreeEntry[]> {
  const work = await tmp.make(`export-${snapshotter}`);
  const e = await runCli(['export', '--store', store, '--snapshotter', snapshotter, reference, '-o', join(work, 'rootfs.tar')], env);
  assert.equal(e.code, 0, e.stderr);
  await mkdir(join(work, 'rootfs'));
  await exec('tar', ['-xpf', join(work, 'rootfs.tar'), '--numeric-owner', '--xattrs', '--xattrs-include=*', '-C', join(work, 'rootfs')]);
  return snapshotTree(join(work, 'rootfs'));
}

async function pulledTree(store: string, snapshotter: string): Promise<TreeEntry[]> {
  const p = await runCli(['pull', '--store', store, '--snapshotter', snapshotter, reference], env);
  assert.equal(p.code, 0, p.stderr);
  const dir = await tmp.make(`merged-${snapshotter}`);
  const m = await runCli(['mount', '--store', store, '--snapshotter', snapshotter, reference, dir], env);
  assert.equal(m.code, 0, m.stderr);
  try {
    return await snapshotTree(dir);
  } finally {
    const u = await runCli(['unmount', '--store', store, '--snapshotter', snapshotter, dir], env);
    assert.equal(u.code, 0, u.stderr);
  }
}

function mtimeOf(tree: TreeEntry[], path: string): number {
  const e = tree.find((x) => x.path === path);
  assert.ok(e, `${path} is in the tree`);
  return Number(BigInt(e.mtimeNs) / 1_000_000n);
}

describe('the same layers give the same tree on every backend (containerd overlay semantics)', () => {
  const trees: Record<string, TreeEntry[]> = {};

  for (const snapshotter of ['overlay', 'native'] as const) {
    test(`${snapshotter}: symlinked and replaced parents, whiteouts that make parents, lower directory times kept`, async (t) => {
      if (MISSING) return t.skip(MISSING);
      const store = await tmp.make(`store-${snapshotter}`);
      const tree = await pulledTree(store, snapshotter);
      assert.deepEqual(checkExpectations(tree, EXPECT), [], snapshotter);
      assertSameTree(tree, await exportedTree(store, snapshotter), { names: [`${snapshotter} mount`, `${snapshotter} export`], mtimes: true, ignore: (p) => p === '.' });
      for (const dir of ['kept', 'kept/sub', 'other', 'target']) assert.equal(mtimeOf(tree, dir), OLD.getTime(), `${snapshotter}: ${dir} keeps the image's time`);
      trees[snapshotter] = tree;
    });
  }

  test('btrfs: the same tree as native and overlay', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const fs = await mountLoopBtrfs(256);
    if (typeof fs === 'string') return t.skip(`LOUD SKIP: btrfs: ${fs}`);
    try {
      trees.btrfs = await pulledTree(join(fs.mnt, 'store'), 'btrfs');
      assert.deepEqual(checkExpectations(trees.btrfs, EXPECT), []);
    } finally {
      await deleteSubvolumesUnder(fs.mnt);
      await fs.unmount();
    }
  });

  test('overlay == native == btrfs, entry by entry, mtimes included', (t) => {
    if (MISSING) return t.skip(MISSING);
    const names = Object.keys(trees);
    assert.ok(names.includes('overlay') && names.includes('native'), `trees: ${names.join(', ')}`);
    for (const other of names.filter((n) => n !== 'overlay')) {
      assertSameTree(trees.overlay!, trees[other]!, { names: ['overlay', other], mtimes: false });
      assertSameTree(trees.overlay!, trees[other]!, { names: ['overlay', other], mtimes: true, ignore: (p) => MADE_NOW.has(p) });
    }
  });
});
