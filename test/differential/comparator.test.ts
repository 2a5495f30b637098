/**
 * The corpus's comparator has teeth: it reports a one-byte content change, a mode change, an
 * mtime change, a missing hardlink, an owner change and a changed binary xattr, each on real
 * files, and ignores only what compare.ts documents (overlay xattrs, sub-second mtimes on zfs,
 * mtimes the oracle made itself rather than took from the layer).
 */
import assert from 'node:assert/strict';
import { chmod, copyFile, cp, lchown, link, lutimes, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { lsetxattr } from '../../src/sys/native.js';
import { TempDirs } from '../helpers/tmp.js';
import { snapshotTree, type TreeEntry } from '../helpers/tree.js';
import { compareFeature } from './compare.js';
import { applyRecipe } from './recipe.js';

const tmp = new TempDirs();
const feature = { id: 'probe' };
let original = '';
let reference: TreeEntry[] = [];

/** A copy of the original tree with `change` applied, and the comparator's verdict on it. */
async function diffsAfter(change: (dir: string) => Promise<void>, opts: { secondsOnly?: boolean; clockSinceNs?: bigint } = {}): Promise<string[]> {
  const dir = await tmp.make('cmp-copy');
  await cp(original, dir, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  // cp does not keep hardlinks or xattrs: rebuild them as in the original
  await rm(join(dir, 'c/probe/two'));
  await link(join(dir, 'c/probe/one'), join(dir, 'c/probe/two'));
  lsetxattr(join(dir, 'c/probe/one'), 'user.bin', Buffer.from([0, 0xff, 1]));
  await fixTimes(dir);
  await change(dir);
  return compareFeature(reference, await snapshotTree(dir), feature, opts);
}

/** Directory and file times as the original has them (after the rebuild above touched them). */
async function fixTimes(dir: string): Promise<void> {
  for (const rel of ['c/probe/one', 'c/probe/link', 'c/probe/sub', 'c/probe', 'c']) {
    const st = await stat(join(original, rel), { bigint: true }).catch(() => undefined);
    if (!st) continue;
    const t = Number(st.mtimeNs) / 1e9;
    await lutimes(join(dir, rel), t, t);
  }
}

before(async () => {
  original = await tmp.make('cmp-original');
  await applyRecipe(
    original,
    [
      { op: 'file', path: 'c/probe/one', content: 'hardlinked content\n', mode: 0o640 },
      { op: 'hardlink', path: 'c/probe/two', target: 'c/probe/one' },
      { op: 'symlink', path: 'c/probe/link', target: 'one' },
      { op: 'dir', path: 'c/probe/sub', mode: 0o750 },
    ],
    1_704_067_200.25,
  );
  lsetxattr(join(original, 'c/probe/one'), 'user.bin', Buffer.from([0, 0xff, 1]));
  await fixTimes(original);
  reference = await snapshotTree(original);
});

after(() => tmp.cleanup());

test('an identical copy compares equal (the copy procedure itself changes nothing)', async () => {
  assert.deepEqual(await diffsAfter(async () => {}), []);
});

test('a one-byte content change of the same size is caught', async () => {
  const diffs = await diffsAfter(async (dir) => {
    const st = await stat(join(dir, 'c/probe/one'));
    await writeFile(join(dir, 'c/probe/one'), 'hardlinked contenT\n');
    await utimes(join(dir, 'c/probe/one'), st.atime, st.mtime);
  });
  assert.ok(diffs.some((d) => d.includes('sha256')), diffs.join('\n'));
  assert.ok(!diffs.some((d) => d.includes('size')), 'same size');
});

test('a mode change is caught', async () => {
  const diffs = await diffsAfter((dir) => chmod(join(dir, 'c/probe/sub'), 0o755));
  assert.ok(diffs.some((d) => /c\/probe\/sub: mode/.test(d)), diffs.join('\n'));
});

test('an mtime change of one second is caught, also where only seconds count (zfs)', async () => {
  const later = (dir: string) => lutimes(join(dir, 'c/probe/link'), 1_704_067_201.25, 1_704_067_201.25);
  for (const secondsOnly of [false, true]) {
    const diffs = await diffsAfter(later, { secondsOnly });
    assert.ok(diffs.some((d) => /c\/probe\/link: mtime/.test(d)), diffs.join('\n'));
  }
});

test('a sub-second mtime change is caught, and ignored only where the backend keeps whole seconds', async () => {
  const nudge = (dir: string) => lutimes(join(dir, 'c/probe/link'), 1_704_067_200.75, 1_704_067_200.75);
  assert.ok((await diffsAfter(nudge)).some((d) => d.includes('mtime')));
  assert.deepEqual(await diffsAfter(nudge, { secondsOnly: true }), []);
});

test('a missing hardlink (the same content as a separate file) is caught', async () => {
  const diffs = await diffsAfter(async (dir) => {
    await rm(join(dir, 'c/probe/two'));
    await copyFile(join(dir, 'c/probe/one'), join(dir, 'c/probe/two'));
    await chmod(join(dir, 'c/probe/two'), 0o640);
    const st = await stat(join(dir, 'c/probe/one'));
    await utimes(join(dir, 'c/probe/two'), st.atime, st.mtime);
    await fixTimes(dir);
  });
  assert.ok(diffs.some((d) => d.includes('hardlink group')), diffs.join('\n'));
});

test('an owner change and a changed binary xattr are caught; overlay xattrs are ignored', async () => {
  const owner = await diffsAfter((dir) => lchown(join(dir, 'c/probe/link'), 1, 1));
  assert.ok(owner.some((d) => d.includes('uid')), owner.join('\n'));
  const xattr = await diffsAfter(async (dir) => lsetxattr(join(dir, 'c/probe/one'), 'user.bin', Buffer.from([0, 0xfe, 1])));
  assert.ok(xattr.some((d) => d.includes('xattr user.bin')), xattr.join('\n'));
  const overlay = await diffsAfter(async (dir) => lsetxattr(join(dir, 'c/probe/sub'), 'trusted.overlay.opaque', Buffer.from('y')));
  assert.deepEqual(overlay, []);
});

test('entries outside the feature directory are not its business', async () => {
  assert.deepEqual(await diffsAfter((dir) => writeFile(join(dir, 'c/elsewhere'), 'x')), []);
});

test('the clock mask hides only mtimes the oracle made itself: a layer mtime that changed is still caught', async () => {
  const later = (dir: string) => lutimes(join(dir, 'c/probe/link'), 1_704_067_201.25, 1_704_067_201.25);
  // the fixture's times are from 2024, long before "now": nothing is masked
  const diffs = await diffsAfter(later, { clockSinceNs: BigInt(Date.now() - 60_000) * 1_000_000n });
  assert.ok(diffs.some((d) => /c\/probe\/link: mtime/.test(d)), diffs.join('\n'));
});

test('an entry the oracle made now (its mtime is not from the layer) must be made now by the candidate too', async () => {
  const since = BigInt(Date.now() - 60_000) * 1_000_000n;
  const dir = await tmp.make('cmp-clock');
  await cp(original, dir, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  const nowTree = await snapshotTree(dir);
  await lutimes(join(dir, 'c/probe/link'), Date.now() / 1000, Date.now() / 1000);
  const oracle = (await snapshotTree(dir)).map((e) => (e.path === 'c/probe/link' ? e : nowTree.find((n) => n.path === e.path)!));
  // candidate made it now too, at another instant: equal
  await lutimes(join(dir, 'c/probe/link'), Date.now() / 1000 + 1, Date.now() / 1000 + 1);
  assert.ok(!compareFeature(oracle, await snapshotTree(dir), feature, { clockSinceNs: since }).some((d) => d.includes('c/probe/link: mtime')));
  // candidate took an old time instead: caught
  await lutimes(join(dir, 'c/probe/link'), 1_704_067_200, 1_704_067_200);
  assert.ok(compareFeature(oracle, await snapshotTree(dir), feature, { clockSinceNs: since }).some((d) => d.includes('c/probe/link: mtime')));
});
