import type { BigIntStats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { readdirNames, underDir } from '../sys/byte-path.js';
import { lgetxattrs } from '../sys/native.js';
import { parseOverlayOptions } from '../snapshotter/mount.js';
import type { Mount } from '../snapshotter/snapshotter.js';
import { TreeTarWriter, type TreeTarOptions } from '../tar/tree-writer.js';
import type { DiffStats } from './diff.js';

/** A writable snapshot's kernel overlay union: its upper directory and which xattr namespace overlay uses there. */
export interface OverlayUpper {
  upperDir: string;
  /** Mounted with `userxattr`: overlay keeps its marks as user.overlay.* instead of trusted.overlay.*. */
  userxattr: boolean;
}

/** The upper directory of a kernel overlay among a snapshot's mounts; undefined for any other kind (a bind, btrfs, fuse-overlayfs). */
export function overlayUpper(mounts: readonly Mount[]): OverlayUpper | undefined {
  if (mounts.length !== 1 || mounts[0]!.type !== 'overlay') return undefined;
  const spec = parseOverlayOptions(mounts[0]!.options);
  if (spec.upper === undefined) return undefined;
  return { upperDir: spec.upper, userxattr: spec.flags.includes('userxattr') };
}

/**
 * The upper directory does not hold every change of its union: overlay kept a file's data in a
 * lower layer (metacopy) or a renamed directory's contents under its old name (redirect_dir).
 * Then the trees must be compared (Docker's overlay2 falls back to its naive diff for the same
 * reason); see upperDiffOrTrees.
 */
export class UpperNotDiffError extends Error {
  constructor(readonly path: string, readonly mark: string) {
    super(`${path} in the upper directory carries ${mark}: the upper directory does not hold every change`);
  }
}

/**
 * Runs `write` reading the upper directory (`compareTrees` false); where that upper turns out not
 * to hold every change (UpperNotDiffError, met while the layer was written), once more comparing
 * trees. The first attempt's output is the caller's to discard (writeLayerBlob aborts its ingest).
 */
export async function upperDiffOrTrees<T>(write: (compareTrees: boolean) => Promise<T>): Promise<T> {
  try {
    return await write(false);
  } catch (err) {
    if (err instanceof UpperNotDiffError) return write(true);
    throw err;
  }
}

/**
 * Writes an overlay union's changes as an OCI layer tar from its upper directory, as Docker's
 * overlay2 driver diffs a container: every entry there is a change (copied up, created, or a
 * directory on the way to one) and is written with its metadata; a 0/0 character device is a
 * deletion, written as `.wh.NAME`; an opaque directory gets `.wh..wh..opq` right after it. The
 * lower layers are never read, so the cost is that of the changes, not of the image. overlay's
 * own xattrs are not carried. An entry with a metacopy or redirect mark rejects with
 * UpperNotDiffError (what was written is then incomplete): see upperDiffOrTrees.
 */
export async function writeOverlayDiff(upper: OverlayUpper, out: Writable, options: TreeTarOptions = {}): Promise<DiffStats> {
  const tar = new TreeTarWriter(out, options);
  const marks = overlayMarks(upper.userxattr);
  let whiteouts = 0;
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdirNames(underDir(upper.upperDir, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const abs = underDir(upper.upperDir, path);
      const st = await lstat(abs, { bigint: true });
      if (isWhiteout(st)) {
        await tar.marker(rel ? `${rel}/.wh.${name}` : `.wh.${name}`);
        whiteouts++;
        continue;
      }
      const all = lgetxattrs(abs);
      for (const mark of [marks.metacopy, marks.redirect]) if (all[mark] !== undefined) throw new UpperNotDiffError(path, mark);
      const xattrs = Object.fromEntries(Object.entries(all).filter(([k]) => !k.startsWith(marks.prefix)));
      if (!(await tar.entry(abs, path, st, xattrs)) || !st.isDirectory()) continue;
      if (all[marks.opaque]?.toString() === 'y') {
        await tar.marker(`${path}/.wh..wh..opq`);
        whiteouts++;
      }
      await walk(path);
    }
  };
  await walk('');
  await tar.end();
  return { entries: tar.entries, whiteouts };
}

function isWhiteout(st: BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n;
}

function overlayMarks(userxattr: boolean) {
  const prefix = userxattr ? 'user.overlay.' : 'trusted.overlay.';
  return { prefix, opaque: `${prefix}opaque`, metacopy: `${prefix}metacopy`, redirect: `${prefix}redirect` };
}
