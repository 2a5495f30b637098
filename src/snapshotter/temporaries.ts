import { mkdir, readdir, readFile, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isCode } from '../content/layout.js';
import { isOwnerGone, newOwner, type LockOwner } from '../content/lock.js';
import { isStratumError } from '../errors.js';
import { isMountPoint, mountAll, unmountAll } from './mount.js';
import type { Mount, Snapshotter } from './snapshotter.js';

/**
 * What stratum makes for the length of one operation and removes at its end: snapshots
 * (`extract-*` while a layer unpacks, `commit-view-*`, `fixup-*`, `rootfs-view-*`) and the mounts
 * of them or of a user's snapshot. A process killed in between cannot remove them, so each one
 * records its owner (pid, host, and the process's start time, so a reused pid is not taken for
 * the owner) and whoever comes next removes those whose owner is gone:
 * - a temporary snapshot carries the owner in its OWNER_LABEL;
 * - a temporary mount is made on `<snapshotter root>/mounts/<pid>-<nonce>`, beside
 *   `<pid>-<nonce>.json`, the owner record, written before the directory is made and removed
 *   after it is gone. Only a directory with such a record is ever unmounted: a mount stratum did
 *   not make is never touched.
 */

export const OWNER_LABEL = 'dev.stratum.temporary.owner';
export const TEMP_MOUNTS_DIR = 'mounts';
const RECORD_SUFFIX = '.json';

/** Labels for a temporary snapshot of this process. */
export function temporaryLabels(): Record<string, string> {
  return { [OWNER_LABEL]: JSON.stringify(newOwner()) };
}

/** Whether a temporary's owner record names a process that is certainly gone (an unreadable one is not). */
export function isOwnerRecordGone(text: string | undefined): boolean {
  if (text === undefined) return false;
  let owner: LockOwner;
  try {
    owner = JSON.parse(text) as LockOwner;
  } catch {
    return false;
  }
  return typeof owner?.pid === 'number' && typeof owner.hostname === 'string' && isOwnerGone(owner);
}

/**
 * Mounts `mounts` (none: just an empty directory) on a new directory of this process under the
 * snapshotter's root, recorded so it can be reclaimed if this process dies. Returns the directory.
 */
export async function mountTemporary(snapshotterRoot: string, mounts: Mount[], purpose: string): Promise<string> {
  const dir = join(snapshotterRoot, TEMP_MOUNTS_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const owner = newOwner();
  const target = join(dir, `${owner.pid}-${owner.nonce}`);
  await writeFile(target + RECORD_SUFFIX, JSON.stringify({ ...owner, purpose }) + '\n', { flag: 'wx', mode: 0o600 });
  try {
    await mkdir(target, { mode: 0o700 });
    if (mounts.length > 0) await mountAll(mounts, target);
  } catch (err) {
    await rmdir(target).catch(() => {});
    await unlink(target + RECORD_SUFFIX).catch(() => {});
    throw err;
  }
  return target;
}

/** Undoes mountTemporary: unmounts, removes the directory, then its record. */
export async function unmountTemporary(target: string): Promise<void> {
  await unmountAll(target);
  await rmdir(target).catch((err: unknown) => {
    if (!isCode(err, 'ENOENT')) throw err;
  });
  await unlink(target + RECORD_SUFFIX).catch((err: unknown) => {
    if (!isCode(err, 'ENOENT')) throw err;
  });
}

export interface ReclaimedTemporaries {
  /** Mount directories of dead processes that were unmounted (or were empty) and removed. */
  mounts: string[];
  /** Temporary snapshots of dead processes that were removed. */
  snapshots: string[];
}

/** The temporaries whose owner is gone: mount directories (with a record) and snapshot keys. */
export async function findAbandoned(snapshotter: Snapshotter): Promise<ReclaimedTemporaries> {
  const out: ReclaimedTemporaries = { mounts: [], snapshots: [] };
  const dir = join(snapshotter.root, TEMP_MOUNTS_DIR);
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (!isCode(err, 'ENOENT')) throw err;
  }
  for (const name of names) {
    if (!name.endsWith(RECORD_SUFFIX)) continue;
    const record = join(dir, name);
    const text = await readFile(record, 'utf8').catch(() => undefined);
    if (isOwnerRecordGone(text)) out.mounts.push(record.slice(0, -RECORD_SUFFIX.length));
  }
  await snapshotter.walk((info) => {
    if (info.kind !== 'committed' && isOwnerRecordGone(info.labels[OWNER_LABEL])) out.snapshots.push(info.name);
  }, `labels."${OWNER_LABEL}"`);
  return out;
}

/**
 * Removes the temporaries of processes that are gone: their mounts first (detached, so a busy one
 * cannot block), then their snapshots. A live process's temporaries are left alone.
 */
export async function reclaimTemporaries(snapshotter: Snapshotter): Promise<ReclaimedTemporaries> {
  const abandoned = await findAbandoned(snapshotter);
  const out: ReclaimedTemporaries = { mounts: [], snapshots: [] };
  for (const target of abandoned.mounts) {
    if (await isMountPoint(target)) await unmountAll(target, true);
    await rmdir(target).catch((err: unknown) => {
      if (!isCode(err, 'ENOENT')) throw err;
    });
    await unlink(target + RECORD_SUFFIX).catch(() => {});
    out.mounts.push(target);
  }
  for (const key of abandoned.snapshots) {
    try {
      await snapshotter.remove(key);
      out.snapshots.push(key);
    } catch (err) {
      // Another process reclaimed it first.
      if (!isStratumError(err, 'ERR_NOT_FOUND')) throw err;
    }
  }
  return out;
}
