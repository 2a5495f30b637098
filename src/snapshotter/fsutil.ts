import { randomBytes } from 'node:crypto';
import { access, lstat, mkdir, opendir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isCode } from '../content/layout.js';
import type { Usage } from './snapshotter.js';

/** Directories of a snapshotter root that every backend shares. */
export const SNAPSHOTS_DIR = 'snapshots';
/** New snapshot data is built here, then renamed into snapshots/<id> under the metadata lock. */
export const STAGING_DIR = 'staging';
/** Data of removed snapshots is renamed here before it is deleted; cleanup empties it. */
export const REMOVAL_DIR = 'removal';

/** A name for a staging or removal entry that records which process made it: `<prefix>-<pid>-<random>`. */
export function ownedName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** The pid in an ownedName, or undefined when the name is not one. */
export function ownerPid(name: string): number | undefined {
  const m = /-(\d+)-[0-9a-f]{12}$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return !isCode(err, 'ESRCH');
  }
}

/** Renames `dir` into the removal area; false when it did not exist. */
export async function moveToRemoval(root: string, dir: string, label: string): Promise<string | undefined> {
  const aside = join(root, REMOVAL_DIR, ownedName(label));
  await mkdir(join(root, REMOVAL_DIR), { recursive: true });
  try {
    await rename(dir, aside);
  } catch (err) {
    if (isCode(err, 'ENOENT')) return undefined;
    throw err;
  }
  return aside;
}

/** Whether `path` exists (a dangling symlink counts as missing). */
export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Deletes a tree; a missing tree (or one another cleanup deletes at the same time) is fine. */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true, maxRetries: 3 });
  } catch (err) {
    if (!isCode(err, 'ENOENT')) throw err;
  }
}

/**
 * Disk use of a tree without following symlinks: allocated blocks × 512 and the number of
 * inodes, each hardlinked inode counted once. Does not cross into other filesystems. With
 * `apparent`, a regular file counts its size instead of its blocks (for a filesystem whose block
 * counts lag behind its writes).
 */
export async function diskUsage(root: string, options: { apparent?: boolean } = {}): Promise<Usage> {
  const top = await lstat(root, { bigint: true });
  const seen = new Set<string>();
  let size = 0;
  let inodes = 0;
  const count = (st: { ino: bigint; nlink: bigint; blocks: bigint; size: bigint; isDirectory(): boolean; isFile(): boolean }): void => {
    if (st.nlink > 1n && !st.isDirectory()) {
      const id = st.ino.toString();
      if (seen.has(id)) return;
      seen.add(id);
    }
    size += options.apparent && st.isFile() ? Number(st.size) : Number(st.blocks) * 512;
    inodes++;
  };
  count(top);
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    let handle;
    try {
      handle = await opendir(dir, { bufferSize: 256 });
    } catch (err) {
      if (isCode(err, 'ENOENT')) continue;
      throw err;
    }
    for await (const entry of handle) {
      const path = join(dir, entry.name);
      let st;
      try {
        st = await lstat(path, { bigint: true });
      } catch (err) {
        if (isCode(err, 'ENOENT')) continue;
        throw err;
      }
      if (st.dev !== top.dev) continue;
      count(st);
      if (st.isDirectory()) pending.push(path);
    }
  }
  return { size, inodes };
}
