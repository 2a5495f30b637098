/**
 * The overlay differ (commit's fast path): a kernel overlay union's changes read from its upper
 * directory alone. Each case changes a real union through its merged mount, then writes the
 * layer both ways, from the upper directory and by comparing the merged tree with the lower one
 * (the walking differ), and applies each onto a copy of the lower tree: both must give the
 * merged tree. Where the upper does not hold the changes (redirect_dir, metacopy) writing from it
 * is refused (UpperNotDiffError) and upperDiffOrTrees writes again comparing trees, as commit does.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, chown, link, mkdir, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { writeTreeDiff } from '../../src/image/diff.js';
import { overlayUpper, UpperNotDiffError, upperDiffOrTrees, writeOverlayDiff, type OverlayUpper } from '../../src/image/overlay-diff.js';
import { TarReader } from '../../src/tar/reader.js';
import { applyLayer } from '../../src/unpack/apply.js';
import { TempDirs } from '../helpers/tmp.js';
import { assertSameTree, snapshotTree } from '../helpers/tree.js';

const exec = promisify(execFile);
const tmp = new TempDirs();
after(() => tmp.cleanup());

const MISSING = process.getuid?.() !== 0 ? 'needs root: overlay mounts, owners, trusted xattrs' : undefined;

interface Union {
  lower: string;
  merged: string;
  upper: OverlayUpper;
  unmount(): Promise<void>;
}

/** A lower tree with whole-second mtimes (as unpacked layers have), under a real overlay mount. */
async function union(t: { after(fn: () => Promise<void>): void }, flags: string[] = []): Promise<Union> {
  const root = await tmp.make('overlay-diff');
  const [lower, upperDir, work, merged] = ['lower', 'upper', 'work', 'merged'].map((d) => join(root, d)) as [string, string, string, string];
  for (const d of [upperDir, work, merged]) await mkdir(d);
  await mkdir(join(lower, 'etc/conf.d'), { recursive: true });
  await writeFile(join(lower, 'etc/os-release'), 'ID=lower\n');
  await writeFile(join(lower, 'etc/conf.d/a.conf'), 'a\n');
  await writeFile(join(lower, 'etc/conf.d/b.conf'), 'b\n');
  await mkdir(join(lower, 'usr/bin'), { recursive: true });
  await writeFile(join(lower, 'usr/bin/tool'), '#!/bin/sh\n', { mode: 0o755 });
  await link(join(lower, 'usr/bin/tool'), join(lower, 'usr/bin/tool-link'));
  await symlink('tool', join(lower, 'usr/bin/alias'));
  await mkdir(join(lower, 'var/lib/data'), { recursive: true });
  await writeFile(join(lower, 'var/lib/data/big.bin'), Buffer.alloc(300_000, 7));
  await writeFile(join(lower, 'var/lib/data/keep.txt'), 'keep\n');
  await exec('find', [lower, '-exec', 'touch', '-h', '-d', '@1700000000', '{}', '+']);
  const options = [...flags, `lowerdir=${lower}`, `upperdir=${upperDir}`, `workdir=${work}`].join(',');
  await exec('mount', ['-t', 'overlay', 'overlay', '-o', options, merged]);
  let mounted = true;
  const unmount = async () => {
    if (mounted) await exec('umount', [merged]);
    mounted = false;
  };
  t.after(unmount);
  const upper = overlayUpper([{ type: 'overlay', source: 'overlay', options: options.split(',') }]);
  assert.ok(upper, 'an overlay mount with an upper directory is recognised');
  return { lower, merged, upper, unmount };
}

async function collect(write: (out: PassThrough) => Promise<unknown>): Promise<Buffer> {
  const out = new PassThrough();
  const parts: Buffer[] = [];
  out.on('data', (c: Buffer) => parts.push(c));
  await write(out);
  return Buffer.concat(parts);
}

function entryNames(tar: Buffer): string[] {
  const reader = new TarReader();
  reader.push(tar);
  const names: string[] = [];
  for (let e = reader.next(); e; e = reader.next()) if (e.kind === 'entry') names.push(e.header.name.replace(/\/$/, ''));
  return names;
}

/** Applies `layer` onto a copy of `lower` and returns the resulting tree. */
async function applied(lower: string, layer: Buffer, name: string) {
  const dir = join(await tmp.make(`overlay-diff-${name}`), 'root');
  await exec('cp', ['-a', lower, dir]);
  await applyLayer(Readable.from([layer]), dir, { mode: 'full', subject: `${name} layer` });
  return snapshotTree(dir);
}

/** Both differs' layers, checked to rebuild the merged tree from the lower one. */
async function bothWays(u: Union): Promise<{ fromUpper: Buffer; walked: Buffer }> {
  const fromUpper = await collect((out) => writeOverlayDiff(u.upper, out));
  const walked = await collect((out) => writeTreeDiff(u.lower, u.merged, out));
  const expected = await snapshotTree(u.merged);
  assertSameTree(expected, await applied(u.lower, fromUpper, 'upper'), { names: ['merged union', 'lower + layer from the upper dir'] });
  assertSameTree(expected, await applied(u.lower, walked, 'walked'), { names: ['merged union', 'lower + walked layer'] });
  return { fromUpper, walked };
}

describe('overlay differ: a union’s changes from its upper directory', () => {
  test('additions, edits, deletions, owners, modes, links, xattrs and an opaque directory rebuild the union', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const u = await union(t, ['index=off']);
    const m = u.merged;
    await writeFile(join(m, 'added.txt'), 'new\n');
    await exec('setfattr', ['-n', 'user.note', '-v', 'kept', join(m, 'added.txt')]);
    await writeFile(join(m, 'etc/os-release'), 'ID=upper\n');
    await rm(join(m, 'usr/bin/alias'));
    await chown(join(m, 'usr/bin/tool'), 1000, 1000);
    await chmod(join(m, 'var/lib'), 0o700);
    await link(join(m, 'added.txt'), join(m, 'etc/added-link'));
    await symlink('../added.txt', join(m, 'etc/added-sym'));
    await exec('mkfifo', [join(m, 'etc/fifo')]);
    // A directory removed and made again: overlay marks it opaque, nothing of the lower shows through.
    await rm(join(m, 'etc/conf.d'), { recursive: true });
    await mkdir(join(m, 'etc/conf.d'));
    await writeFile(join(m, 'etc/conf.d/c.conf'), 'c\n');
    // A whole lower directory deleted.
    await rm(join(m, 'var/lib/data'), { recursive: true });
    // Created and deleted within the snapshot: leaves nothing.
    await writeFile(join(m, 'ephemeral'), 'x');
    await rm(join(m, 'ephemeral'));
    await utimes(join(m, 'added.txt'), 1700000100, 1700000100);

    const { fromUpper, walked } = await bothWays(u);
    const names = entryNames(fromUpper);
    for (const n of ['added.txt', 'etc/os-release', 'usr/bin/.wh.alias', 'usr/bin/tool', 'var/lib', 'var/lib/.wh.data', 'etc/conf.d', 'etc/conf.d/.wh..wh..opq', 'etc/conf.d/c.conf', 'etc/added-link']) {
      assert.ok(names.includes(n), `${n} in the layer from the upper dir: ${names.join(' ')}`);
    }
    assert.ok(names.indexOf('etc/conf.d/.wh..wh..opq') === names.indexOf('etc/conf.d') + 1, 'the opaque marker follows its directory, before its entries');
    for (const n of ['ephemeral', 'var/lib/data/keep.txt', 'etc/conf.d/a.conf', 'usr/bin/tool-link']) assert.ok(!names.includes(n), `${n} is not a change`);
    const reader = new TarReader();
    reader.push(fromUpper);
    for (let e = reader.next(); e; e = reader.next()) {
      if (e.kind !== 'entry') continue;
      assert.notEqual(e.header.type, 'char', `${e.header.name}: no overlay whiteout device in the layer`);
      assert.deepEqual(Object.keys(e.header.xattrs ?? {}).filter((k) => k.includes('overlay')), [], `${e.header.name}: no overlay xattrs`);
    }
    // The walking differ writes one whiteout per deleted lower entry where overlay made the directory opaque.
    assert.ok(entryNames(walked).includes('etc/conf.d/.wh.a.conf'));
  });

  test('an untouched union gives an empty layer', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const u = await union(t);
    const { fromUpper } = await bothWays(u);
    assert.deepEqual(entryNames(fromUpper), []);
  });

  test('redirect_dir: a renamed lower directory lives under its old name, so the upper is not the diff', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const u = await union(t, ['redirect_dir=on', 'index=off']);
    await rename(join(u.merged, 'var/lib/data'), join(u.merged, 'var/lib/moved'));
    await assert.rejects(collect((out) => writeOverlayDiff(u.upper, out)), (err: unknown) => err instanceof UpperNotDiffError && err.mark === 'trusted.overlay.redirect');
    // upperDiffOrTrees tries the upper, then writes again comparing trees, which gets it right.
    const attempts: boolean[] = [];
    const layer = await upperDiffOrTrees((compareTrees) => {
      attempts.push(compareTrees);
      return collect((out) => (compareTrees ? writeTreeDiff(u.lower, u.merged, out) : writeOverlayDiff(u.upper, out)));
    });
    assert.deepEqual(attempts, [false, true]);
    assertSameTree(await snapshotTree(u.merged), await applied(u.lower, layer, 'redirect'), { names: ['merged union', 'lower + walked layer'] });
  });

  test('metacopy: a chmod copies up metadata only, so the upper is not the diff', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const u = await union(t, ['metacopy=on', 'redirect_dir=on', 'index=off']);
    await chmod(join(u.merged, 'var/lib/data/big.bin'), 0o600);
    await assert.rejects(collect((out) => writeOverlayDiff(u.upper, out)), (err: unknown) => err instanceof UpperNotDiffError && err.mark === 'trusted.overlay.metacopy');
  });

  test('only a single kernel overlay mount with an upper directory is recognised', () => {
    assert.equal(overlayUpper([{ type: 'bind', source: '/x', options: ['rbind', 'rw'] }]), undefined);
    assert.equal(overlayUpper([{ type: 'overlay', source: 'overlay', options: ['lowerdir=/a:/b'] }]), undefined, 'a read-only view');
    assert.equal(overlayUpper([{ type: 'fuse3.fuse-overlayfs', source: 'overlay', options: ['lowerdir=/a', 'upperdir=/u', 'workdir=/w'] }]), undefined);
    assert.deepEqual(overlayUpper([{ type: 'overlay', source: 'overlay', options: ['userxattr', 'lowerdir=/a', 'upperdir=/u', 'workdir=/w'] }]), { upperDir: '/u', userxattr: true });
  });
});
