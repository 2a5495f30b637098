import { createHash } from 'node:crypto';
import { openSync } from 'node:fs';
import { lstat, open, readdir, rmdir, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { DigestMismatchError, InvalidArgumentError, NotFoundError, StoreError } from '../errors.js';
import { blobReadStream, type BlobReadOptions } from './blob-stream.js';
import type { BlobInfo, IngestOptions, IngestWriter, Ingester, Provider, TaggedImage, TagStore } from './content.js';
import { digestAlgorithm, digestHex, digestOf, isDigest, parseDigest, type Digest, type DigestAlgorithm } from '../oci/digest.js';
import {
  ANNOTATION_CONTAINERD_IMAGE_NAME,
  ANNOTATION_REF_NAME,
  BLOBS_DIR,
  ensureLayout,
  INDEX_FILE,
  INDEX_LOCK_FILE,
  INGEST_DIR,
  isCode,
  readIndexFile,
  writeFileAtomic,
} from './layout.js';
import { checkLocation } from './location.js';
import { acquireFileLock, tryAcquireFileLock } from './lock.js';
import { MediaType } from '../oci/mediatypes.js';
import { IngestBoard, type IngestFollow } from './follow.js';
import { FileIngestWriter, ingestPaths, RefIngestWriter } from './ingest.js';
import type { Descriptor, ImageIndex } from '../oci/types.js';

export { defaultStoreRoot } from './layout.js';

/** Whole-blob reads (manifests, configs) are refused above this unless the caller says otherwise. */
export const DEFAULT_MAX_READ_BYTES = 4 * 1024 * 1024;
const DIGEST_ALGORITHMS: readonly DigestAlgorithm[] = ['sha256', 'sha512'];
const INDEX_LOCK_TIMEOUT_MS = 60_000;

export interface BlobEntry extends BlobInfo {
  /** A committed blob's mtime is set at commit; ctime moves with the rename into blobs/. */
  mtimeMs: number;
  ctimeMs: number;
}

export interface IngestEntry {
  /** Directory name under ingest/, `<alg>-<hex>`. */
  name: string;
  digest: Digest | undefined;
  dir: string;
  /** Bytes of the partial data file. */
  bytes: number;
  /** Newest mtime of the directory, data and state files. */
  mtimeMs: number;
}

export interface DiskUsage {
  /** Committed blobs and their total size. */
  blobs: number;
  bytes: number;
  /** Partial downloads under ingest/. */
  ingests: number;
  ingestBytes: number;
}

/**
 * The content store: an OCI image layout directory (oci-layout, index.json, blobs/<alg>/<hex>)
 * plus stratum's ingest/ area for partial downloads. Safe to share between processes: each
 * ingest has its own lock and index.json updates are serialised by index.json.lock.
 */
export class OciStore implements Provider, Ingester, TagStore {
  /** The ingests this process writes, for readers that follow them (see follow()). */
  private readonly board = new IngestBoard();

  private constructor(readonly root: string) {}

  /**
   * Follows the ingest of `digest` that this process writes (now, or once it opens): a reader of
   * its bytes as they land, for work that can start before the last byte (extraction while
   * downloading). `settled` resolves once the caller knows how the blob's download ended: true
   * with no ingest here means the blob was stored already (read it with open()).
   */
  follow(digest: Digest, settled: Promise<boolean>): IngestFollow {
    return this.board.follow(digest, settled);
  }

  /**
   * Opens the layout at `root`, creating it when missing or empty; refuses a foreign or corrupt one
   * with StoreError, and one inside another store's content or a snapshot with UnsafeLocationError.
   */
  static async open(root: string): Promise<OciStore> {
    const abs = resolve(root);
    checkLocation(abs, 'store');
    await ensureLayout(abs);
    return new OciStore(abs);
  }

  blobPath(digest: Digest | string): string {
    const d = parseDigest(digest);
    return join(this.root, BLOBS_DIR, digestAlgorithm(d), digestHex(d));
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.info(digest)) !== undefined;
  }

  async info(digest: Digest): Promise<BlobInfo | undefined> {
    const path = this.blobPath(digest);
    try {
      const st = await stat(path);
      return st.isFile() ? { digest, size: st.size } : undefined;
    } catch (err) {
      if (isCode(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  open(digest: Digest, options: BlobReadOptions = {}): Readable {
    const path = this.blobPath(digest);
    let fd: number;
    try {
      // Opened now, not lazily, so a missing blob throws here and a concurrent GC cannot pull it away mid-read.
      fd = openSync(path, 'r');
    } catch (err) {
      if (isCode(err, 'ENOENT')) throw new NotFoundError(`blob ${digest} is not in the store ${this.root}`);
      throw new StoreError(`cannot open blob ${digest}: ${(err as Error).message}`, { cause: err });
    }
    return blobReadStream(fd, options);
  }

  /** Reads a small blob whole and checks its digest (a corrupt manifest should never be trusted). */
  async read(digest: Digest, maxBytes: number = DEFAULT_MAX_READ_BYTES): Promise<Buffer> {
    const path = this.blobPath(digest);
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if (isCode(err, 'ENOENT')) throw new NotFoundError(`blob ${digest} is not in the store ${this.root}`);
      throw new StoreError(`cannot open blob ${digest}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const { size } = await fh.stat();
      if (size > maxBytes) {
        throw new StoreError(`blob ${digest} is ${size} bytes, over the ${maxBytes}-byte limit for reading it whole; stream it with open()`);
      }
      const data = await fh.readFile();
      const actual = digestOf(data, digestAlgorithm(digest));
      if (actual !== digest) throw new DigestMismatchError(`stored blob ${path}`, digest, actual);
      return data;
    } finally {
      await fh.close();
    }
  }

  async ingest(digest: Digest, options: IngestOptions = {}): Promise<IngestWriter | null> {
    const d = parseDigest(digest);
    const { expectedSize } = options;
    if (expectedSize !== undefined && !(Number.isSafeInteger(expectedSize) && expectedSize >= 0)) {
      throw new InvalidArgumentError(`ingest of blob ${d}: expectedSize must be a non-negative integer, got ${expectedSize}`);
    }
    // A stored blob whose size is not the expected one is damaged (truncated): fetched again, and
    // the commit's rename replaces it atomically.
    const present = async () => {
      const info = await this.info(d);
      return info !== undefined && (expectedSize === undefined || info.size === expectedSize);
    };
    if (await present()) return null;
    const paths = ingestPaths(this.root, d);
    const lockOptions = options.lockTimeoutMs === undefined ? {} : { timeoutMs: options.lockTimeoutMs };
    const release = await acquireFileLock(paths.lock, lockOptions);
    // Whoever held the lock before us may have committed the blob: then there is nothing to fetch.
    if (await present()) {
      await release();
      await rmdir(paths.dir).catch(() => {});
      return null;
    }
    return FileIngestWriter.open({ digest: d, paths, blobPath: this.blobPath(d), expectedSize, release, board: this.board });
  }

  /**
   * A writer for a blob whose digest is known only once it is written (a layer being made),
   * keyed by `ref` (containerd's content writer): one writer per ref at a time, GC leaves it
   * alone, `commit(size, expected)` turns it into the blob named by its digest.
   */
  async writer(ref: string, options: { lockTimeoutMs?: number } = {}): Promise<RefIngestWriter> {
    if (typeof ref !== 'string' || ref === '') throw new InvalidArgumentError('an ingest ref must be a non-empty string');
    const hex = createHash('sha256').update(ref).digest('hex').slice(0, 32);
    const dir = join(this.root, INGEST_DIR, `ref-${hex}`);
    const paths = { dir, data: join(dir, 'data'), state: join(dir, 'state'), lock: join(dir, 'lock') };
    const release = await acquireFileLock(paths.lock, options.lockTimeoutMs === undefined ? {} : { timeoutMs: options.lockTimeoutMs });
    return RefIngestWriter.open(ref, paths, (digest) => this.blobPath(digest), release);
  }

  async put(data: Uint8Array, expected?: Digest): Promise<BlobInfo> {
    const digest = expected === undefined ? digestOf(data) : parseDigest(expected);
    const existing = await this.info(digest);
    if (existing) {
      const actual = digestOf(data, digestAlgorithm(digest));
      if (actual !== digest) throw new DigestMismatchError(`blob ${digest}`, digest, actual);
      return existing;
    }
    const writer = (await this.ingest(digest, { expectedSize: data.length })) as FileIngestWriter | null;
    if (writer === null) return (await this.info(digest)) ?? { digest, size: data.length };
    try {
      await writer.reset();
      await writer.write(data);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    return writer.commit(data.length);
  }

  async deleteBlob(digest: Digest): Promise<boolean> {
    try {
      await unlink(this.blobPath(digest));
      return true;
    } catch (err) {
      if (isCode(err, 'ENOENT')) return false;
      throw err;
    }
  }

  /** Every committed blob, by stat (content is not read). Files in blobs/ that are not digests are skipped. */
  async *blobs(): AsyncGenerator<BlobEntry> {
    for (const alg of DIGEST_ALGORITHMS) {
      const dir = join(this.root, BLOBS_DIR, alg);
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (err) {
        if (isCode(err, 'ENOENT')) continue;
        throw err;
      }
      for (const name of names) {
        const digest = `${alg}:${name}`;
        if (!isDigest(digest)) continue;
        const st = await lstat(join(dir, name)).catch(() => undefined);
        if (!st?.isFile()) continue;
        yield { digest, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
      }
    }
  }

  /** Partial downloads under ingest/. */
  async *ingests(): AsyncGenerator<IngestEntry> {
    const base = join(this.root, INGEST_DIR);
    let names: string[];
    try {
      names = await readdir(base);
    } catch (err) {
      if (isCode(err, 'ENOENT')) return;
      throw err;
    }
    for (const name of names) {
      const dir = join(base, name);
      const dirSt = await lstat(dir).catch(() => undefined);
      if (!dirSt?.isDirectory()) continue;
      const dash = name.indexOf('-');
      const candidate = dash > 0 ? `${name.slice(0, dash)}:${name.slice(dash + 1)}` : '';
      const data = await lstat(join(dir, 'data')).catch(() => undefined);
      const state = await lstat(join(dir, 'state')).catch(() => undefined);
      yield {
        name,
        digest: isDigest(candidate) ? candidate : undefined,
        dir,
        bytes: data?.isFile() ? data.size : 0,
        mtimeMs: Math.max(dirSt.mtimeMs, data?.mtimeMs ?? 0, state?.mtimeMs ?? 0),
      };
    }
  }

  /**
   * Deletes the partial download `entry` if nobody holds its lock and it was last touched before
   * `olderThanMs` (epoch ms). Returns the bytes freed, or undefined when it was kept.
   */
  async reclaimIngest(entry: IngestEntry, olderThanMs: number, dryRun = false): Promise<number | undefined> {
    const lockPath = join(entry.dir, 'lock');
    const release = await tryAcquireFileLock(lockPath);
    if (!release) return undefined;
    try {
      const data = await lstat(join(entry.dir, 'data')).catch(() => undefined);
      const state = await lstat(join(entry.dir, 'state')).catch(() => undefined);
      const touched = Math.max(data?.mtimeMs ?? 0, state?.mtimeMs ?? 0);
      if (touched >= olderThanMs) return undefined;
      if (dryRun) return data?.size ?? 0;
      await unlink(join(entry.dir, 'data')).catch(() => {});
      await unlink(join(entry.dir, 'state')).catch(() => {});
      return data?.size ?? 0;
    } finally {
      await release();
      // Fails (harmlessly) unless the directory is empty: kept partials, or a new ingest that just started.
      await rmdir(entry.dir).catch(() => {});
    }
  }

  async diskUsage(): Promise<DiskUsage> {
    const usage: DiskUsage = { blobs: 0, bytes: 0, ingests: 0, ingestBytes: 0 };
    for await (const blob of this.blobs()) {
      usage.blobs++;
      usage.bytes += blob.size;
    }
    for await (const entry of this.ingests()) {
      usage.ingests++;
      usage.ingestBytes += entry.bytes;
    }
    return usage;
  }

  async readIndex(): Promise<ImageIndex> {
    return readIndexFile(this.root);
  }

  /**
   * Runs `fn` holding index.json.lock. When `fn` returns an index, it replaces index.json atomically
   * (temp file, fsync, rename, fsync dir); returning undefined leaves the file as it was.
   */
  async withIndexLock<T>(fn: (index: ImageIndex) => Promise<{ index?: ImageIndex; result: T }> | { index?: ImageIndex; result: T }): Promise<T> {
    const release = await acquireFileLock(join(this.root, INDEX_LOCK_FILE), { timeoutMs: INDEX_LOCK_TIMEOUT_MS, pollMs: 5, maxPollMs: 100 });
    try {
      const { index, result } = await fn(await readIndexFile(this.root));
      if (index) {
        index.mediaType ??= MediaType.OciIndex;
        await writeFileAtomic(join(this.root, INDEX_FILE), JSON.stringify(index, null, 2) + '\n');
      }
      return result;
    } finally {
      await release();
    }
  }

  async listTags(): Promise<TaggedImage[]> {
    const index = await this.readIndex();
    const out: TaggedImage[] = [];
    for (const entry of index.manifests) {
      const name = entry.annotations?.[ANNOTATION_REF_NAME];
      if (typeof name === 'string') out.push({ name, descriptor: withoutNameAnnotations(entry) });
    }
    return out;
  }

  async getTag(name: string): Promise<TaggedImage | undefined> {
    return (await this.listTags()).find((t) => t.name === name);
  }

  async setTag(name: string, descriptor: Descriptor): Promise<void> {
    checkTagName(name);
    const entry = tagEntry(name, descriptor);
    if (!(await this.has(entry.digest))) {
      throw new NotFoundError(`cannot tag ${name}: its manifest ${entry.digest} is not in the store ${this.root}`);
    }
    await this.withIndexLock((index) => {
      const manifests: Descriptor[] = [];
      let placed = false;
      for (const existing of index.manifests) {
        if (existing.annotations?.[ANNOTATION_REF_NAME] !== name) manifests.push(existing);
        else if (!placed) {
          manifests.push(entry);
          placed = true;
        }
      }
      if (!placed) manifests.push(entry);
      return { index: { ...index, manifests }, result: undefined };
    });
  }

  async removeTag(name: string): Promise<boolean> {
    return this.withIndexLock((index) => {
      const manifests = index.manifests.filter((e) => e.annotations?.[ANNOTATION_REF_NAME] !== name);
      if (manifests.length === index.manifests.length) return { result: false };
      return { index: { ...index, manifests }, result: true };
    });
  }
}

function checkTagName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidArgumentError('tag name must be a non-empty string');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) throw new InvalidArgumentError(`tag name ${JSON.stringify(name)} contains control characters`);
}

function tagEntry(name: string, descriptor: Descriptor): Descriptor {
  if (typeof descriptor !== 'object' || descriptor === null) throw new InvalidArgumentError(`cannot tag ${name}: descriptor is not an object`);
  const digest = parseDigest(descriptor.digest);
  if (typeof descriptor.mediaType !== 'string' || descriptor.mediaType === '') {
    throw new InvalidArgumentError(`cannot tag ${name}: descriptor has no mediaType`);
  }
  if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0) {
    throw new InvalidArgumentError(`cannot tag ${name}: descriptor size ${descriptor.size} is not a non-negative integer`);
  }
  return {
    ...descriptor,
    digest,
    annotations: { ...descriptor.annotations, [ANNOTATION_REF_NAME]: name, [ANNOTATION_CONTAINERD_IMAGE_NAME]: name },
  };
}

/** The descriptor as the caller gave it to setTag: the two name annotations the store adds are dropped. */
function withoutNameAnnotations(entry: Descriptor): Descriptor {
  const { annotations, ...rest } = entry;
  if (!annotations) return { ...rest };
  const { [ANNOTATION_REF_NAME]: _ref, [ANNOTATION_CONTAINERD_IMAGE_NAME]: _ctr, ...others } = annotations;
  return Object.keys(others).length > 0 ? { ...rest, annotations: others } : { ...rest };
}
