import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockedError, StoreError } from '../errors.js';
import { PRIVATE_FILE_MODE } from '../sys/mkdir-all.js';

/**
 * Cross-process file locks: a lock is a file created with O_EXCL that names its owner
 * (pid, hostname, the process's start time, a random nonce). A waiter polls with backoff.
 * A lock whose owner is provably gone (same host, pid dead or reused) is stale and is
 * broken by renaming it away while holding `<path>.break`, so two waiters that both saw
 * the same stale lock cannot both break it (the second would otherwise rename away the
 * fresh lock the first one just created).
 */

export interface LockOwner {
  pid: number;
  hostname: string;
  /** Start time of the owning process (Linux: clock ticks since boot, /proc/<pid>/stat field 22); detects pid reuse. */
  processStart?: string;
  acquiredAt: string;
  nonce: string;
}

export interface FileLockOptions {
  /** Give up with LockedError after this long. Default: wait forever (stale locks are still broken). 0 = try once. */
  timeoutMs?: number;
  /** First poll interval; grows by half each round up to maxPollMs. Default 20 ms. */
  pollMs?: number;
  /** Default 500 ms. */
  maxPollMs?: number;
  signal?: AbortSignal;
}

export type ReleaseLock = () => Promise<void>;

/** A lock file that cannot be parsed (its creator died between create and write) is stale after this long. */
const UNREADABLE_LOCK_GRACE_MS = 5_000;

const thisHost = hostname();
const ownStart = processStartTime(process.pid);

/** Acquires the lock at `path` (creating its directory if needed) and resolves to its release function. */
export async function acquireFileLock(path: string, options: FileLockOptions = {}): Promise<ReleaseLock> {
  const release = await acquireOrWait(path, options);
  if (!release) throw new Error('unreachable: acquireOrWait without timeout returned null');
  return release;
}

/** One attempt (breaking a stale lock if it finds one): the release function, or null while a live process holds it. */
export async function tryAcquireFileLock(path: string): Promise<ReleaseLock | null> {
  return acquireOrWait(path, { timeoutMs: 0 }, true);
}

async function acquireOrWait(path: string, options: FileLockOptions, nullOnBusy = false): Promise<ReleaseLock | null> {
  const timeoutMs = options.timeoutMs ?? Number.POSITIVE_INFINITY;
  const maxPollMs = options.maxPollMs ?? 500;
  let pollMs = options.pollMs ?? 20;
  const started = Date.now();
  for (;;) {
    options.signal?.throwIfAborted();
    const owner = newOwner();
    if (await createExclusive(path, owner)) return () => releaseLock(path, owner.nonce);
    const seen = await inspectLock(path);
    if (seen === 'gone') continue;
    // When another waiter is busy breaking it, fall through and poll like for a live lock.
    if (seen.stale && (await breakStaleLock(path, seen.identity))) continue;
    const waited = Date.now() - started;
    if (waited >= timeoutMs) {
      if (nullOnBusy) return null;
      throw new LockedError(path, seen.owner ? describeOwner(seen.owner) : undefined, waited);
    }
    const jitter = Math.random() * pollMs * 0.3;
    await sleep(Math.min(pollMs + jitter, Math.max(0, timeoutMs - waited)), undefined, { signal: options.signal });
    pollMs = Math.min(pollMs * 1.5, maxPollMs);
  }
}

/** Whether a live (or unverifiable, e.g. another host's) owner holds the lock at `path`. */
export async function isLockHeld(path: string): Promise<boolean> {
  const seen = await inspectLock(path);
  return seen !== 'gone' && !seen.stale;
}

export async function readLockOwner(path: string): Promise<LockOwner | undefined> {
  try {
    return parseOwner(await readFile(path, 'utf8'));
  } catch (err) {
    if (isCode(err, 'ENOENT')) return undefined;
    throw err;
  }
}

export function describeOwner(owner: LockOwner): string {
  return `pid ${owner.pid} on ${owner.hostname} since ${owner.acquiredAt}`;
}

/** True when the owner is certainly gone: same host and its pid is dead or now belongs to a different process. */
export function isOwnerGone(owner: LockOwner): boolean {
  if (owner.hostname !== thisHost) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if (isCode(err, 'ESRCH')) return true;
    return false; // EPERM: alive, someone else's
  }
  if (owner.processStart !== undefined) {
    const now = processStartTime(owner.pid);
    if (now !== undefined && now !== owner.processStart) return true;
  }
  return false;
}

/** An owner record for this process, as lock files and leases store it. */
export function newOwner(): LockOwner {
  const owner: LockOwner = {
    pid: process.pid,
    hostname: thisHost,
    acquiredAt: new Date().toISOString(),
    nonce: randomBytes(12).toString('hex'),
  };
  if (ownStart !== undefined) owner.processStart = ownStart;
  return owner;
}

async function createExclusive(path: string, owner: LockOwner): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(path, 'wx', PRIVATE_FILE_MODE);
      try {
        await fh.writeFile(JSON.stringify(owner) + '\n');
      } finally {
        await fh.close();
      }
      return true;
    } catch (err) {
      if (isCode(err, 'EEXIST')) return false;
      // The lock's directory may be missing (first use) or removed meanwhile (GC of an ingest dir).
      if (isCode(err, 'ENOENT') && attempt < 5) {
        await mkdir(dirname(path), { recursive: true });
        continue;
      }
      throw new StoreError(`cannot create lock ${path}: ${(err as Error).message}`, { cause: err });
    }
  }
}

interface LockIdentity {
  ino: number;
  text: string;
}
type Inspection = 'gone' | { stale: boolean; owner: LockOwner | undefined; identity: LockIdentity };

async function inspectLock(path: string): Promise<Inspection> {
  let text: string;
  let st;
  try {
    st = await stat(path);
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isCode(err, 'ENOENT')) return 'gone';
    throw err;
  }
  const owner = parseOwner(text);
  const stale = owner ? isOwnerGone(owner) : Date.now() - st.mtimeMs > UNREADABLE_LOCK_GRACE_MS;
  return { stale, owner, identity: { ino: st.ino, text } };
}

/**
 * Removes the stale lock `identity` if it is still the one at `path`. Breakers serialise on
 * `<path>.break`; only the holder of that guard re-checks and renames, so a fresh lock created
 * after the stale one was removed is never touched.
 */
async function breakStaleLock(path: string, identity: LockIdentity): Promise<boolean> {
  const guardPath = `${path}.break`;
  const guard = newOwner();
  if (!(await createExclusive(guardPath, guard))) {
    // Another waiter is breaking it (or died doing so: then its guard is cleared for the next round).
    return clearDeadGuard(guardPath);
  }
  try {
    const now = await inspectLock(path);
    if (now === 'gone' || !now.stale || now.identity.ino !== identity.ino || now.identity.text !== identity.text) return true;
    const aside = `${path}.stale-${guard.nonce}`;
    await rename(path, aside);
    await unlink(aside).catch(() => {});
    return true;
  } finally {
    await releaseLock(guardPath, guard.nonce);
  }
}

/** Returns true when the guard is gone now (so breaking can be retried at once). */
async function clearDeadGuard(guardPath: string): Promise<boolean> {
  const seen = await inspectLock(guardPath);
  if (seen === 'gone') return true;
  if (!seen.stale) return false;
  // A breaker that died inside its few-syscall window. Rename it aside and delete it only if it is
  // the file we judged dead; otherwise it is a new guard: link it back (link never clobbers).
  const aside = `${guardPath}.dead-${randomBytes(6).toString('hex')}`;
  try {
    await rename(guardPath, aside);
  } catch {
    return true;
  }
  const st = await stat(aside).catch(() => undefined);
  if (st && st.ino !== seen.identity.ino) await link(aside, guardPath).catch(() => {});
  await unlink(aside).catch(() => {});
  return true;
}

async function releaseLock(path: string, nonce: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isCode(err, 'ENOENT')) return;
    throw err;
  }
  // Only remove our own lock: if ours was (wrongly) broken, the file now belongs to someone else.
  if (parseOwner(text)?.nonce !== nonce) return;
  await unlink(path).catch((err: unknown) => {
    if (!isCode(err, 'ENOENT')) throw err;
  });
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockOwner>;
    if (typeof v.pid === 'number' && typeof v.hostname === 'string' && typeof v.nonce === 'string') return v as LockOwner;
  } catch {
    // empty or half-written lock file
  }
  return undefined;
}

function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces and parentheses; fields after the last ')' are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19]; // field 22 overall = index 19 after pid and comm
  } catch {
    return undefined;
  }
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}
