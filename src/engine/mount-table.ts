import { createHash } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic, isCode } from '../content/layout.js';
import { ensurePrivateDir } from '../sys/mkdir-all.js';
import { isMountPoint } from '../snapshotter/mount.js';
import type { SnapshotterName } from '../snapshotter/index.js';

export const MOUNTS_DIR = 'mounts';

/** One mount stratum made and has not undone: what `stratum mount` and `snapshot prepare --target` record. */
export interface MountRecord {
  /** Absolute mount point. */
  target: string;
  snapshotter: SnapshotterName;
  /** The snapshotter's root the snapshot lives in. */
  snapshotRoot: string;
  /** The snapshot mounted there. */
  key: string;
  readonly: boolean;
  /** The view was created for this mount: unmount removes it. */
  ownsSnapshot: boolean;
  /** The image mounted, when it is one. */
  image?: string;
  /** The process that mounted it (the mount outlives it). */
  pid: number;
  created: string;
}

/**
 * The store's mount table, `STORE/mounts/<hash of target>.json`: every mount stratum makes and
 * keeps after the command ends. `unmount` touches only what is recorded here, so a user's own
 * mount on some path is never undone; `snapshot rm` and `commit` find the mounts of a snapshot.
 * A record whose target is no longer mounted (a reboot, a manual umount) is stale: `prune()`
 * drops it.
 */
export class MountTable {
  readonly dir: string;

  constructor(storeRoot: string) {
    this.dir = join(storeRoot, MOUNTS_DIR);
  }

  private pathOf(target: string): string {
    return join(this.dir, `${createHash('sha256').update(resolve(target)).digest('hex').slice(0, 32)}.json`);
  }

  async add(record: Omit<MountRecord, 'pid' | 'created' | 'target'> & { target: string }): Promise<MountRecord> {
    await ensurePrivateDir(this.dir);
    const full: MountRecord = { ...record, target: resolve(record.target), pid: process.pid, created: new Date().toISOString() };
    await writeFileAtomic(this.pathOf(full.target), JSON.stringify(full) + '\n');
    return full;
  }

  async get(target: string): Promise<MountRecord | undefined> {
    try {
      const record = JSON.parse(await readFile(this.pathOf(target), 'utf8')) as MountRecord;
      return record.target === resolve(target) ? record : undefined;
    } catch (err) {
      if (isCode(err, 'ENOENT') || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  async remove(target: string): Promise<void> {
    await rm(this.pathOf(target), { force: true });
  }

  async list(): Promise<MountRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (isCode(err, 'ENOENT')) return [];
      throw err;
    }
    const out: MountRecord[] = [];
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
      try {
        out.push(JSON.parse(await readFile(join(this.dir, name), 'utf8')) as MountRecord);
      } catch {
        // Being replaced, or damaged: not a record.
      }
    }
    return out;
  }

  /** The recorded mounts of snapshot `key` of the snapshotter at `snapshotRoot`. */
  async forSnapshot(snapshotRoot: string, key: string): Promise<MountRecord[]> {
    return (await this.list()).filter((r) => r.snapshotRoot === snapshotRoot && r.key === key);
  }

  /** Records whose target is no longer a mount point. */
  async stale(): Promise<MountRecord[]> {
    const out: MountRecord[] = [];
    for (const record of await this.list()) if (!(await isMountPoint(record.target))) out.push(record);
    return out;
  }
}
