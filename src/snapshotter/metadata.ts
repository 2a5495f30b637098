import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreError } from '../errors.js';
import { acquireFileLock } from '../oci/lock.js';
import { isCode, writeFileAtomic } from '../oci/layout.js';
import type { Kind } from './snapshotter.js';

/**
 * The metadata store of one snapshotter root: a JSON journal, `metadata.json`, rewritten whole
 * for every mutation (temp file + fsync + rename + directory fsync) while holding a cross-process
 * file lock. Readers never lock: they read the last complete file.
 *
 * Why a JSON journal rather than SQLite (better-sqlite3): it needs no native compile at install
 * (better-sqlite3 12 compiles for ~90 s, 13 segfaults on Node 20); a rename is atomic, so a
 * crash at any instant leaves either the old or the new file, never a half state, with no WAL
 * or recovery step to get right; and snapshot metadata is small (hundreds of records, a few KB
 * each at most), so rewriting it whole costs less than an fsync does anyway.
 */

export const METADATA_FILE = 'metadata.json';
export const METADATA_LOCK_FILE = 'metadata.lock';
const FORMAT_VERSION = 1;

export interface SnapshotRecord {
  /** Internal id: names the snapshot's data directory; monotonic, never reused, kept by commit. */
  id: number;
  kind: Kind;
  /** Name of the committed parent; absent for a root. */
  parent?: string;
  labels: Record<string, string>;
  /** ISO-8601 timestamps. */
  created: string;
  updated: string;
}

export interface MetadataState {
  version: number;
  nextId: number;
  /** By key (active, view) or name (committed). */
  snapshots: Record<string, SnapshotRecord>;
}

export function emptyState(): MetadataState {
  return { version: FORMAT_VERSION, nextId: 1, snapshots: {} };
}

export class MetadataStore {
  readonly path: string;
  readonly lockPath: string;
  /** Serialises this process's transactions before the file lock, so they queue instead of polling. */
  private queue: Promise<unknown> = Promise.resolve();
  private cache: { key: string; state: MetadataState } | undefined;

  constructor(readonly root: string) {
    this.path = join(root, METADATA_FILE);
    this.lockPath = join(root, METADATA_LOCK_FILE);
  }

  /** The last committed state (a private copy the caller may change). */
  async read(): Promise<MetadataState> {
    return structuredClone(await this.readShared());
  }

  /**
   * Runs fn on a copy of the current state while holding the lock; if fn returns without
   * throwing, the copy is written atomically and becomes the new state. fn may do filesystem
   * work (renames) that must happen under the lock before the state is written.
   */
  async transaction<T>(fn: (draft: MetadataState) => T | Promise<T>): Promise<T> {
    return this.locked(async () => {
      const draft = structuredClone(await this.readShared());
      const result = await fn(draft);
      await writeFileAtomic(this.path, JSON.stringify(draft));
      this.cache = undefined;
      return result;
    });
  }

  /** Runs fn under the lock without writing anything (for work that must not race a transaction). */
  async locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      const release = await acquireFileLock(this.lockPath);
      try {
        return await fn();
      } finally {
        await release();
      }
    });
    this.queue = run.catch(() => {});
    return run;
  }

  private async readShared(): Promise<MetadataState> {
    let st;
    try {
      st = await stat(this.path, { bigint: true });
    } catch (err) {
      if (isCode(err, 'ENOENT')) return emptyState();
      throw err;
    }
    // Every write is a rename of a new file, so inode + ctime + size identify one version.
    const key = `${st.ino}:${st.ctimeNs}:${st.mtimeNs}:${st.size}`;
    if (this.cache?.key === key) return this.cache.state;
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if (isCode(err, 'ENOENT')) return emptyState();
      throw err;
    }
    const state = parseState(this.path, text);
    this.cache = { key, state };
    return state;
  }
}

function parseState(path: string, text: string): MetadataState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new StoreError(`snapshot metadata ${path} is not valid JSON: ${(err as Error).message}`);
  }
  const s = parsed as Partial<MetadataState> | null;
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new StoreError(`snapshot metadata ${path} is not a JSON object`);
  if (s.version !== FORMAT_VERSION) throw new StoreError(`snapshot metadata ${path}: unsupported version ${JSON.stringify(s.version)}`);
  if (typeof s.nextId !== 'number' || !Number.isSafeInteger(s.nextId) || s.nextId < 1) {
    throw new StoreError(`snapshot metadata ${path}: nextId must be a positive integer`);
  }
  if (typeof s.snapshots !== 'object' || s.snapshots === null || Array.isArray(s.snapshots)) {
    throw new StoreError(`snapshot metadata ${path}: snapshots must be an object`);
  }
  for (const [key, r] of Object.entries(s.snapshots)) {
    if (typeof r !== 'object' || r === null || typeof r.id !== 'number' || typeof r.kind !== 'string' || typeof r.labels !== 'object') {
      throw new StoreError(`snapshot metadata ${path}: record ${JSON.stringify(key)} is malformed`);
    }
  }
  return s as MetadataState;
}
