import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { destroyDataset } from '../../src/snapshotter/zfs/zfs.js';

const run = promisify(execFile);

/** A ZFS pool on a sparse file, served by zfs-fuse, mounted at `mnt`. */
export interface FilePool {
  pool: string;
  mnt: string;
  /** Creates (once) a dataset mounted at `dir`, an empty directory inside the pool. */
  datasetAt(dir: string): Promise<string>;
  /** `zfs destroy -r -f` (a test's dataset: whatever is still mounted under it goes too), retried while busy; still busy: left for stop(), said on stderr. */
  destroy(dataset: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts zfs-fuse (unless one runs) and makes a pool of `sizeMiB`, or says why it cannot (not
 * root, no /dev/fuse, no zfs-fuse): the caller skips loudly with that reason.
 */
export async function startFilePool(sizeMiB = 2048): Promise<FilePool | string> {
  if (process.getuid?.() !== 0) return 'needs root for zfs-fuse';
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse';
  if (!existsSync('/usr/sbin/zfs-fuse')) return 'zfs-fuse is not installed';
  const dir = await mkdtemp(join(tmpdir(), 'stratum-zfs-'));
  let daemon: number | undefined;
  const running = () => run('pgrep', ['-x', 'zfs-fuse']).then(() => true, () => false);
  const answers = () => run('zpool', ['list']).then(() => true, () => false);
  // A daemon that was just killed takes ~7 s to exit, and one started before that fails silently: wait it out.
  for (let i = 0; i < 150 && (await running()) && !(await answers()); i++) await sleep(100);
  if (!(await running())) {
    await run('zfs-fuse', ['-p', join(dir, 'zfs-fuse.pid'), '-x']);
    for (let i = 0; i < 50 && !(await answers()); i++) await sleep(100);
    daemon = Number((await readFile(join(dir, 'zfs-fuse.pid'), 'utf8').catch(() => '')).trim()) || undefined;
  }
  const pool = `stratumtest${process.pid}`;
  const file = join(dir, 'pool.img');
  const mnt = join(dir, 'mnt');
  try {
    await run('truncate', ['-s', `${sizeMiB}M`, file]);
    await run('zpool', ['create', '-m', mnt, pool, file]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    return `cannot create a zfs-fuse pool: ${((err as { stderr?: string }).stderr ?? (err as Error).message).trim()}`;
  }
  return {
    pool,
    mnt,
    async datasetAt(path: string) {
      const { stdout } = await run('zfs', ['list', '-H', '-o', 'name,mountpoint', '-t', 'filesystem']);
      const found = stdout.split('\n').find((l) => l.split('\t')[1] === path);
      if (found) return found.split('\t')[0]!;
      const name = `${pool}/${path.slice(mnt.length + 1).replace(/[^A-Za-z0-9_.:-]/g, '_')}`;
      await run('zfs', ['create', '-o', `mountpoint=${path}`, name]);
      return name;
    },
    async destroy(dataset: string) {
      try {
        await destroyDataset(dataset, { force: true });
      } catch (err) {
        // A test's throwaway dataset that zfs-fuse keeps busy (seen on a loaded machine) is not the
        // snapshotter's failure: it goes with the pool at the end. Said loudly, never hidden.
        if (!/busy/.test((err as Error).message)) throw err;
        process.stderr.write(`LOUD: zfs-fuse kept ${dataset} busy past the retries; left for the pool's destruction at the end of the run: ${(err as Error).message}\n`);
      }
    },
    async stop() {
      for (let attempt = 0; attempt < 10; attempt++) {
        if (await run('zpool', ['destroy', '-f', pool]).then(() => true, () => false)) break;
        await sleep(500);
      }
      if (daemon) process.kill(daemon, 'SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
