import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, opendir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isSubvolume } from '../../src/snapshotter/btrfs/btrfs.js';

const run = promisify(execFile);

/** A btrfs on a file-backed loop device, mounted; `unmount` takes it down and deletes the file. */
export interface LoopBtrfs {
  mnt: string;
  unmount(): Promise<void>;
}

/**
 * Makes and mounts a sparse btrfs of `sizeMiB`, or says why it cannot (not root, no
 * btrfs-progs, no loop devices): the caller skips loudly with that reason.
 */
export async function mountLoopBtrfs(sizeMiB = 512): Promise<LoopBtrfs | string> {
  if (process.getuid?.() !== 0) return 'needs root to make and mount a btrfs';
  const missing = await run('mkfs.btrfs', ['--version']).then(
    () => undefined,
    () => 'mkfs.btrfs (btrfs-progs) is not installed',
  );
  if (missing) return missing;
  const dir = await mkdtemp(join(tmpdir(), 'stratum-btrfs-'));
  const image = join(dir, 'fs.img');
  const mnt = join(dir, 'mnt');
  await run('truncate', ['-s', `${sizeMiB}M`, image]);
  await run('mkfs.btrfs', ['-q', image]);
  await mkdir(mnt);
  try {
    await run('mount', ['-o', 'loop', image, mnt]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    return `cannot loop-mount a btrfs here: ${(err as Error).message.trim()}`;
  }
  return {
    mnt,
    async unmount() {
      await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Deletes every subvolume under `dir` (read-only ones included), deepest first, so the tree can be removed. */
export async function deleteSubvolumesUnder(dir: string): Promise<void> {
  const found: string[] = [];
  const walk = async (d: string, depth: number): Promise<void> => {
    if (depth > 6) return;
    let handle;
    try {
      handle = await opendir(d);
    } catch {
      return;
    }
    for await (const e of handle) {
      if (!e.isDirectory()) continue;
      const path = join(d, e.name);
      await walk(path, depth + 1);
      if (await isSubvolume(path)) found.push(path);
    }
  };
  await walk(dir, 0);
  for (const path of found) await run('btrfs', ['subvolume', 'delete', path]);
}
