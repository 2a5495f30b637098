import { randomBytes } from 'node:crypto';
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { StoreError } from '../errors.js';
import { acquireFileLock } from '../content/lock.js';
import { fsyncDir, isCode, writeFileAtomic } from '../content/layout.js';
import { getOwn, setOwn } from './labels.js';
import type { Kind } from './snapshotter.js';

/**
 * The metadata store of one snapshotter root: an append-only journal, `metadata.journal`, under a
 * cross-process file lock. Its first record is a whole state (the base); each transaction appends
 * one record with only what it changed (records put, keys deleted, the next id), fdatasynced
 * before the lock is released. Once the records after the base outweigh it, the journal is
 * compacted: a new file with one base record replaces it atomically (temp file, fsync, rename,
 * directory fsync). A change therefore costs O(its size), not O(all snapshots): with the whole
 * state rewritten per change, a 10,000-layer image was quadratic.
 *
 * Every record is one line, `<crc32 hex> <json>\n`. A line that is cut short or fails its
 * checksum at the end of the file is a write a crash interrupted: it is ignored, and the next
 * writer truncates it away, so a crash leaves the old or the new state, never a half. A bad record
 * followed by good ones is corruption, and an error.
 *
 * Readers never lock: they keep the state they read and the offset they read up to, and read only
 * the records appended since (a new file, after a compaction, is read whole). The state they hand
 * out is shared: callers must not change it.
 *
 * Why not SQLite (better-sqlite3): a native compile at install (12 takes ~90 s, 13 segfaults on
 * Node 20), and a journal of whole records with a checksum needs no recovery step beyond dropping
 * a torn tail.
 */

export const JOURNAL_FILE = 'metadata.journal';
/** Format 1: the whole state as one JSON file, rewritten per change. Still read when there is no journal. */
export const LEGACY_METADATA_FILE = 'metadata.json';
export const METADATA_LOCK_FILE = 'metadata.lock';
const FORMAT_VERSION = 1;
const JOURNAL_VERSION = 2;
/** Compact once the records after the base are this many times its size (and at least MIN_COMPACT_BYTES). */
const COMPACT_RATIO = 2;
const MIN_COMPACT_BYTES = 256 * 1024;
/** The checksum that starts the file. */
const HEAD_BYTES = 8;

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

/**
 * A transaction's view of the state: reads see its own changes; only changes made through it are
 * written. Records are values: change one by putting a new record.
 */
export class MetadataDraft {
  private readonly puts = new Map<string, SnapshotRecord>();
  private readonly deletes = new Set<string>();
  private next: number;

  constructor(private readonly base: MetadataState) {
    this.next = base.nextId;
  }

  get(key: string): Readonly<SnapshotRecord> | undefined {
    if (this.deletes.has(key)) return undefined;
    return this.puts.get(key) ?? getOwn(this.base.snapshots, key);
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  put(key: string, rec: SnapshotRecord): void {
    this.deletes.delete(key);
    this.puts.set(key, rec);
  }

  delete(key: string): void {
    this.puts.delete(key);
    if (Object.hasOwn(this.base.snapshots, key)) this.deletes.add(key);
  }

  /** A new snapshot id (ids are never reused). */
  allocateId(): number {
    return this.next++;
  }

  /** Every record as the transaction sees it (walks the whole state: for rare calls such as remove's child check). */
  *entries(): Generator<[string, Readonly<SnapshotRecord>]> {
    for (const [key, rec] of Object.entries(this.base.snapshots)) {
      if (!this.deletes.has(key) && !this.puts.has(key)) yield [key, rec];
    }
    yield* this.puts;
  }

  /** The journal record of the changes, or undefined when there are none. */
  record(): DeltaRecord | undefined {
    if (this.puts.size === 0 && this.deletes.size === 0 && this.next === this.base.nextId) return undefined;
    return { nextId: this.next, put: [...this.puts], del: [...this.deletes] };
  }
}

interface DeltaRecord {
  nextId: number;
  put: [string, SnapshotRecord][];
  del: string[];
}

interface BaseRecord {
  base: number;
  /** Random per compaction: the base line's checksum (the file's first bytes) tells one journal file from the next. */
  gen: string;
  nextId: number;
  snapshots: [string, SnapshotRecord][];
}

interface Cache {
  /** Identity of the journal file read (a compaction replaces it): its inode and its first bytes (the base record's checksum). */
  ino: bigint;
  head: string;
  /** mtime when last read up to `offset`: unchanged size and mtime mean nothing was appended. */
  mtimeNs: bigint;
  /** End of the last whole record read. */
  offset: number;
  baseBytes: number;
  state: MetadataState;
}

export class MetadataStore {
  readonly journalPath: string;
  readonly legacyPath: string;
  readonly lockPath: string;
  /** Serialises this process's transactions before the file lock, so they queue instead of polling. */
  private queue: Promise<unknown> = Promise.resolve();
  private cache: Cache | undefined;
  /** Refreshes run one at a time, so records are applied to the shared state in journal order. */
  private refreshing: Promise<unknown> = Promise.resolve();
  private legacyCache: { key: string; state: MetadataState } | undefined;

  constructor(readonly root: string) {
    this.journalPath = join(root, JOURNAL_FILE);
    this.legacyPath = join(root, LEGACY_METADATA_FILE);
    this.lockPath = join(root, METADATA_LOCK_FILE);
  }

  /** The last committed state. Shared: callers must not change it. */
  async read(): Promise<Readonly<MetadataState>> {
    return (await this.refresh()).state;
  }

  /**
   * Runs fn on a draft of the current state while holding the lock; if fn returns without
   * throwing, the draft's changes are made durable and become the new state. fn may do filesystem
   * work (renames) that must happen under the lock before the state is written.
   */
  async transaction<T>(fn: (draft: MetadataDraft) => T | Promise<T>): Promise<T> {
    return this.locked(async () => {
      const current = await this.refresh();
      const draft = new MetadataDraft(current.state);
      const result = await fn(draft);
      const record = draft.record();
      if (record !== undefined) {
        try {
          await this.write(current, record);
        } catch (err) {
          this.cache = undefined; // the in-memory state may be ahead of the file: read it again
          throw err;
        }
      }
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

  /** The state as of the journal's last whole record: read incrementally from where this process left off. */
  private refresh(): Promise<Cache> {
    const run = this.refreshing.then(() => this.catchUp());
    this.refreshing = run.catch(() => {});
    return run;
  }

  private async catchUp(): Promise<Cache> {
    let st;
    try {
      st = await stat(this.journalPath, { bigint: true });
    } catch (err) {
      if (!isCode(err, 'ENOENT')) throw err;
      this.cache = undefined;
      return { ino: -1n, head: '', mtimeNs: 0n, offset: 0, baseBytes: 0, state: await this.readLegacy() };
    }
    const cache = this.cache;
    if (cache !== undefined && cache.ino === st.ino && Number(st.size) === cache.offset && cache.mtimeNs === st.mtimeNs) return cache;
    const fh = await open(this.journalPath, 'r').catch((err: unknown) => {
      if (isCode(err, 'ENOENT')) return undefined;
      throw err;
    });
    if (fh === undefined) return this.catchUp(); // replaced between stat and open: read the new one
    try {
      const { ino, size, mtimeNs } = await fh.stat({ bigint: true });
      const headBuf = Buffer.alloc(HEAD_BYTES);
      const head = headBuf.toString('latin1', 0, (await fh.read(headBuf, 0, HEAD_BYTES, 0)).bytesRead);
      // Read on from where this process left off only in the very file it read (not a newer one that reuses the inode).
      const from = cache !== undefined && cache.ino === ino && cache.head === head && Number(size) >= cache.offset ? cache : undefined;
      const start = from?.offset ?? 0;
      const buf = Buffer.alloc(Number(size) - start);
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, start + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      const next: Cache = from === undefined ? { ino, head, mtimeNs, offset: 0, baseBytes: 0, state: emptyState() } : { ...from, mtimeNs };
      this.cache = undefined; // until the records are applied: a damaged file must be read again
      applyRecords(this.journalPath, next, buf.subarray(0, got), start);
      this.cache = next;
      return next;
    } finally {
      await fh.close();
    }
  }

  private async write(current: Cache, record: DeltaRecord): Promise<void> {
    const line = encodeLine(record);
    const appended = current.offset - current.baseBytes + line.length;
    if (current.ino === -1n || appended > Math.max(MIN_COMPACT_BYTES, COMPACT_RATIO * current.baseBytes)) {
      const state = current.ino === -1n ? structuredClone(current.state) : current.state;
      applyDelta(state, record);
      await this.compact(state);
      return;
    }
    const fh = await open(this.journalPath, 'r+');
    try {
      // Bytes after the last whole record are a write a crash cut short: they go before ours lands.
      if ((await fh.stat()).size !== current.offset) await fh.truncate(current.offset);
      let done = 0;
      while (done < line.length) done += (await fh.write(line, done, line.length - done, current.offset + done)).bytesWritten;
      await fh.datasync();
      current.mtimeNs = (await fh.stat({ bigint: true })).mtimeNs;
    } finally {
      await fh.close();
    }
    applyDelta(current.state, record);
    current.offset += line.length;
  }

  /** Replaces the journal by one base record of `state` (atomically), then drops the legacy file. */
  private async compact(state: MetadataState): Promise<void> {
    const base: BaseRecord = { base: JOURNAL_VERSION, gen: randomBytes(8).toString('hex'), nextId: state.nextId, snapshots: Object.entries(state.snapshots) };
    const line = encodeLine(base);
    await writeFileAtomic(this.journalPath, line);
    const st = await stat(this.journalPath, { bigint: true });
    this.cache = { ino: st.ino, head: line.toString('latin1', 0, HEAD_BYTES), mtimeNs: st.mtimeNs, offset: line.length, baseBytes: line.length, state };
    await unlink(this.legacyPath).then(
      () => fsyncDir(this.root),
      (err: unknown) => {
        if (!isCode(err, 'ENOENT')) throw err;
      },
    );
  }

  /** Format 1 (metadata.json), for a root no journal was written in yet. */
  private async readLegacy(): Promise<MetadataState> {
    let st;
    try {
      st = await stat(this.legacyPath, { bigint: true });
    } catch (err) {
      if (isCode(err, 'ENOENT')) return emptyState();
      throw err;
    }
    const key = `${st.ino}:${st.ctimeNs}:${st.mtimeNs}:${st.size}`;
    if (this.legacyCache?.key === key) return this.legacyCache.state;
    let text: string;
    try {
      text = await readFile(this.legacyPath, 'utf8');
    } catch (err) {
      if (isCode(err, 'ENOENT')) return emptyState();
      throw err;
    }
    const state = parseLegacyState(this.legacyPath, text);
    this.legacyCache = { key, state };
    return state;
  }
}

function encodeLine(record: DeltaRecord | BaseRecord): Buffer {
  const json = Buffer.from(JSON.stringify(record));
  const sum = crc32(json).toString(16).padStart(8, '0');
  return Buffer.concat([Buffer.from(`${sum} `), json, Buffer.from('\n')]);
}

/** Applies the whole records in `buf` (read from `start` of the journal) to `cache`, advancing its offset. */
function applyRecords(path: string, cache: Cache, buf: Buffer, start: number): void {
  let pos = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) return; // a record still being written, or cut short by a crash
    const record = decodeLine(buf.subarray(pos, nl));
    if (record === undefined) {
      // Torn by a crash only if nothing whole follows it; otherwise the file is damaged.
      if (hasWholeRecordAfter(buf, nl + 1)) throw new StoreError(`snapshot metadata ${path}: damaged record at byte ${start + pos}`);
      return;
    }
    if (cache.offset === 0) {
      const base = record as Partial<BaseRecord>;
      if (base.base !== JOURNAL_VERSION || !Array.isArray(base.snapshots)) {
        throw new StoreError(`snapshot metadata ${path}: the first record is not a format-${JOURNAL_VERSION} base (found ${JSON.stringify(base.base)})`);
      }
      cache.state = stateFrom(path, base.nextId, base.snapshots);
      cache.baseBytes = nl + 1 - pos;
    } else {
      checkDelta(path, record);
      applyDelta(cache.state, record as DeltaRecord);
    }
    pos = nl + 1;
    cache.offset = start + pos;
  }
}

function hasWholeRecordAfter(buf: Buffer, from: number): boolean {
  for (let pos = from; pos < buf.length; ) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) return false;
    if (decodeLine(buf.subarray(pos, nl)) !== undefined) return true;
    pos = nl + 1;
  }
  return false;
}

function decodeLine(line: Buffer): unknown {
  if (line.length < 10 || line[8] !== 0x20) return undefined;
  const json = line.subarray(9);
  if (crc32(json).toString(16).padStart(8, '0') !== line.subarray(0, 8).toString('latin1')) return undefined;
  try {
    return JSON.parse(json.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function checkDelta(path: string, r: unknown): asserts r is DeltaRecord {
  const d = r as Partial<DeltaRecord> | null;
  if (typeof d !== 'object' || d === null || !Array.isArray(d.put) || !Array.isArray(d.del) || !validNextId(d.nextId)) {
    throw new StoreError(`snapshot metadata ${path}: malformed record`);
  }
  for (const entry of d.put) checkRecord(path, entry?.[0], entry?.[1]);
}

function applyDelta(state: MetadataState, record: DeltaRecord): void {
  for (const key of record.del) delete state.snapshots[key];
  for (const [key, rec] of record.put) setOwn(state.snapshots, key, rec);
  state.nextId = record.nextId;
}

function stateFrom(path: string, nextId: unknown, entries: unknown[]): MetadataState {
  if (!validNextId(nextId)) throw new StoreError(`snapshot metadata ${path}: nextId must be a positive integer`);
  const state: MetadataState = { version: FORMAT_VERSION, nextId, snapshots: {} };
  for (const entry of entries) {
    const [key, rec] = (Array.isArray(entry) ? entry : []) as [unknown, unknown];
    checkRecord(path, key, rec);
    setOwn(state.snapshots, key, rec);
  }
  return state;
}

function validNextId(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 1;
}

function checkRecord(path: string, key: unknown, rec: unknown): asserts key is string {
  const r = rec as Partial<SnapshotRecord> | null;
  if (typeof key !== 'string' || typeof r !== 'object' || r === null || typeof r.id !== 'number' || typeof r.kind !== 'string' || typeof r.labels !== 'object') {
    throw new StoreError(`snapshot metadata ${path}: record ${JSON.stringify(key)} is malformed`);
  }
}

function parseLegacyState(path: string, text: string): MetadataState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new StoreError(`snapshot metadata ${path} is not valid JSON: ${(err as Error).message}`);
  }
  const s = parsed as Partial<MetadataState> | null;
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new StoreError(`snapshot metadata ${path} is not a JSON object`);
  if (s.version !== FORMAT_VERSION) throw new StoreError(`snapshot metadata ${path}: unsupported version ${JSON.stringify(s.version)}`);
  if (typeof s.snapshots !== 'object' || s.snapshots === null || Array.isArray(s.snapshots)) {
    throw new StoreError(`snapshot metadata ${path}: snapshots must be an object`);
  }
  return stateFrom(path, s.nextId, Object.entries(s.snapshots));
}
