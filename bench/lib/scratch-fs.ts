import { mkdir, rm, rmdir } from 'node:fs/promises';
import { runCapture, runQuiet } from './measure.js';

export interface ScratchFs {
  dir: string;
  remove(): Promise<void>;
}

/**
 * A fresh ext4 on a preallocated loop file, mounted at `dir`, for the runs of one benchmark. On a
 * filesystem that has seen many deletions, ext4's inode allocator skips recently deleted inodes
 * (perf: find_inode_bit / recently_deleted) and creating a file can cost 20x more kernel time for
 * minutes; a new filesystem gives every tool the same clean start. Inode tables are written up
 * front (no lazy init running in the background during the runs). The loop device does direct
 * I/O, as a disk would (`fsType` btrfs: the same, with a fresh btrfs, for the drivers benchmark): with buffered I/O every byte a tool writes would be cached twice, once
 * in the scratch filesystem and again in the host filesystem's copy of the loop file.
 */
export async function createScratchFs(dir: string, sizeGiB: number, fsType: 'ext4' | 'btrfs' = 'ext4'): Promise<ScratchFs> {
  const image = `${dir}.img`;
  await runQuiet('umount', [dir], true).catch(() => {});
  await rm(image, { force: true });
  // Preallocated, not sparse: writes inside the loop filesystem must not allocate blocks in the host's.
  await runQuiet('fallocate', ['-l', `${sizeGiB}G`, image]);
  if (fsType === 'btrfs') await runQuiet('mkfs.btrfs', ['-q', '-f', image]);
  else await runQuiet('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image]);
  await mkdir(dir, { recursive: true });
  const device = (await runCapture('losetup', ['--direct-io=on', '--show', '--find', image])).trim();
  await runQuiet('mount', [device, dir]);
  return {
    dir,
    async remove() {
      await runQuiet('umount', [dir]);
      await runQuiet('losetup', ['--detach', device], true).catch(() => {});
      await rmdir(dir).catch(() => {});
      await rm(image, { force: true });
    },
  };
}
