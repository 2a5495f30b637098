import { loadNative } from '../sys/native.js';
import { diffTrees, hardlinkGroups, snapshotTree, type Tree } from './testsuite/tree.js';

/**
 * xattrs that describe the filesystem, not the image: btrfs shows its properties (`btrfs.compression`)
 * as xattrs, so the same layers on btrfs and elsewhere would differ by them.
 */
const FILESYSTEM_XATTR = /^btrfs\./;

/** Every entry under `dir` (the testsuite's walker): type, mode, owner, content hash, link target, xattrs. */
export async function readTree(dir: string): Promise<Tree> {
  const native = loadNative();
  return snapshotTree(dir, (path) => Object.fromEntries(Object.entries(native.lgetxattrs(path)).filter(([name]) => !FILESYSTEM_XATTR.test(name))));
}

/**
 * What differs between two trees of the same image (names, types, modes, owners, content, link
 * targets, xattrs, hardlink groups), one line per difference naming the path; empty when equal.
 * Times are not compared: each unpack sets them from the same tar, but a directory's mtime
 * follows how a backend applied deletions.
 */
export function compareTrees(expected: Tree, actual: Tree): string[] {
  const out = diffTrees(expected, actual, { mtimes: false });
  const want = JSON.stringify(hardlinkGroups(expected));
  const got = JSON.stringify(hardlinkGroups(actual));
  if (want !== got) out.push(`hardlink groups ${got}, want ${want}`);
  return out;
}
