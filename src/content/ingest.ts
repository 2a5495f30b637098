import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rmdir, truncate, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { DigestMismatchError, isNoSpace, NoSpaceError, SizeMismatchError, StoreError } from '../errors.js';
import type { BlobInfo, IngestWriter } from './content.js';
import { digestAlgorithm, digestHex, type Digest } from '../oci/digest.js';
import { createDigestWriter, type DigestWriter } from '../sys/native.js';
import type { NativeBodySource } from './content.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../sys/mkdir-all.js';
import { fsyncDir, INGEST_DIR } from './layout.js';
import type { ReleaseLock } from './lock.js';
import type { IngestBoard } from './follow.js';

/** Where one digest's partial download lives: `<root>/ingest/<alg>-<hex>/`. */
export interface IngestPaths {
  dir: string;
  data: string;
  state: string;
  lock: string;
}

export function ingestPaths(root: string, digest: Digest): IngestPaths {
  const dir = join(root, INGEST_DIR, `${digestAlgorithm(digest)}-${digestHex(digest)}`);
  return { dir, data: join(dir, 'data'), state: join(dir, 'state'), lock: join(dir, 'lock') };
}

/** What the state file records, for humans and for GC's age check. */
export interface IngestState {
  digest: Digest;
  expectedSize?: number;
  startedAt: string;
  updatedAt: string;
  pid: number;
}

/** Bytes are batched by the Writable (writev) so a burst of small network chunks becomes one write(2). */
const STREAM_HIGH_WATER_MARK = 1 << 20;

/**
 * The writer of one ingest. The caller holds the ingest's lock; every exit (commit, close,
 * abort, a failed verification) releases it exactly once.
 */
export class FileIngestWriter implements IngestWriter {
  /** Writes and hashes on libuv's thread pool (native addon), so the main thread only receives. */
  private digester: DigestWriter;
  private onDisk: number;
  private startOffset: number;
  private inflight: Promise<void> = Promise.resolve();
  private failure: Error | undefined;
  private finished = false;
  private activeStream: Writable | undefined;

  private constructor(
    readonly digest: Digest,
    private readonly paths: IngestPaths,
    private readonly blobPath: string,
    private readonly expectedSize: number | undefined,
    private readonly release: ReleaseLock,
    private fh: FileHandle,
    digester: DigestWriter,
    size: number,
    private readonly startedAt: string,
    private readonly board: IngestBoard | undefined,
  ) {
    this.digester = digester;
    this.onDisk = size;
    this.startOffset = size;
  }

  /** Opens the partial data file (creating it), re-hashes what is already there, records the state file. */
  static async open(args: {
    digest: Digest;
    paths: IngestPaths;
    blobPath: string;
    expectedSize: number | undefined;
    release: ReleaseLock;
    /** Told of every change, for readers that follow the ingest (see follow.ts). */
    board?: IngestBoard;
  }): Promise<FileIngestWriter> {
    const { digest, paths, expectedSize, release, board } = args;
    let fh: FileHandle | undefined;
    try {
      await mkdir(paths.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
      fh = await open(paths.data, 'a', PRIVATE_FILE_MODE);
      let size = (await fh.stat()).size;
      if (expectedSize !== undefined && size > expectedSize) {
        await fh.truncate(0); // longer than the blob can be: the partial is garbage
        size = 0;
      }
      const digester = ingestDigester(fh.fd, digest, paths.data);
      if (size > 0) size = await hashPrefix(paths.data, size, digester);
      const startedAt = new Date().toISOString();
      const writer = new FileIngestWriter(digest, paths, args.blobPath, expectedSize, release, fh, digester, size, startedAt, board);
      await writer.writeState();
      board?.opened(digest, paths.data);
      if (expectedSize !== undefined && size === expectedSize) board?.fetched(digest);
      return writer;
    } catch (err) {
      await fh?.close().catch(() => {});
      await release().catch(() => {});
      throw new StoreError(`cannot open ingest of blob ${digest} in ${paths.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  get offset(): number {
    return this.startOffset;
  }

  /** Bytes on disk and hashed right now (offset plus what this writer appended); the next stream() appends here. */
  get written(): number {
    return this.onDisk;
  }

  stream(): Writable {
    this.assertOpen();
    this.assertNoStream();
    const append = (chunks: Buffer[], cb: (err?: Error | null) => void): void => {
      this.track(this.appendChunks(chunks)).then(() => cb(), cb);
    };
    const stream = new Writable({
      highWaterMark: STREAM_HIGH_WATER_MARK,
      write: (chunk: Buffer, _encoding, cb) => append([chunk], cb),
      writev: (chunks, cb) => append(chunks.map((c) => c.chunk as Buffer), cb),
      destroy: (err, cb) => {
        // Let an in-flight write land before the stream reports itself closed, so close()/reset() see a quiet file.
        this.inflight.then(() => cb(err), () => cb(err));
      },
    });
    this.activeStream = stream;
    return stream;
  }

  async receive(body: NativeBodySource, maxBytes: number): Promise<number> {
    this.assertOpen();
    this.assertNoStream();
    if (this.failure) throw this.failure;
    const before = this.digester.bytes;
    const p = body.receiveInto(this.digester, maxBytes);
    this.track(p.then(() => {}));
    try {
      return await p;
    } catch (err) {
      // A write error poisons the file (refuse to commit); a network error leaves it consistent.
      if ((err as { code?: string }).code === 'ERR_APPLY') this.failure = this.writeFailure(err);
      throw err;
    } finally {
      this.onDisk += this.digester.bytes - before;
      this.landed();
    }
  }

  /** Appends one buffer (used by put()). */
  async write(data: Uint8Array): Promise<void> {
    this.assertOpen();
    await this.track(this.append(data));
  }

  async reset(): Promise<void> {
    this.assertOpen();
    await this.settle();
    this.board?.restarted(this.digest);
    await this.fh.truncate(0);
    this.digester = ingestDigester(this.fh.fd, this.digest, this.paths.data);
    this.onDisk = 0;
    this.startOffset = 0;
    this.failure = undefined;
    this.board?.opened(this.digest, this.paths.data);
  }

  async commit(expectedSize?: number, hooks: { onVerified?: (path: string) => void } = {}): Promise<BlobInfo> {
    this.assertOpen();
    await this.settle();
    if (this.failure) {
      const failure = this.failure;
      await this.close();
      throw new StoreError(`ingest of blob ${this.digest} failed while writing: ${failure.message}`, { cause: failure });
    }
    this.finished = true;
    this.board?.fetched(this.digest);
    const subject = `blob ${this.digest}`;
    const want = expectedSize ?? this.expectedSize;
    if (want !== undefined && this.onDisk !== want) {
      await this.discard();
      throw new SizeMismatchError(subject, want, this.onDisk);
    }
    const actual = `${digestAlgorithm(this.digest)}:${this.digester.digest()}` as Digest;
    if (actual !== this.digest) {
      await this.discard();
      throw new DigestMismatchError(subject, this.digest, actual);
    }
    hooks.onVerified?.(this.paths.data);
    try {
      // mtime = commit time, so GC can tell a blob committed while it ran from an old unreferenced one.
      const now = new Date();
      await this.fh.utimes(now, now);
      await this.fh.sync();
      await this.fh.close();
      await mkdir(dirname(this.blobPath), { recursive: true, mode: PRIVATE_DIR_MODE });
      await rename(this.paths.data, this.blobPath);
      await fsyncDir(dirname(this.blobPath));
    } catch (err) {
      this.board?.restarted(this.digest);
      await this.fh.close().catch(() => {});
      await this.release().catch(() => {});
      throw new StoreError(`cannot commit blob ${this.digest} to ${this.blobPath}: ${(err as Error).message}`, { cause: err });
    }
    this.board?.committed(this.digest);
    await unlink(this.paths.state).catch(() => {});
    await this.release();
    await rmdir(this.paths.dir).catch(() => {}); // another process may already be waiting in it
    return { digest: this.digest, size: this.onDisk };
  }

  async close(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.settle();
    this.board?.restarted(this.digest); // kept for a later resume: what a follower read is void
    await this.fh.close().catch(() => {});
    await this.writeState().catch(() => {});
    await this.release();
  }

  async abort(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.settle();
    await this.discard();
  }

  private async discard(): Promise<void> {
    this.board?.restarted(this.digest);
    await this.fh.close().catch(() => {});
    await unlink(this.paths.data).catch(() => {});
    await unlink(this.paths.state).catch(() => {});
    await this.release();
    await rmdir(this.paths.dir).catch(() => {});
  }

  private async append(data: Uint8Array): Promise<void> {
    await this.appendChunks([data]);
  }

  /** Writes the chunks in order with one writev(2) (the file is O_APPEND) and hashes them, off the main thread. */
  private async appendChunks(chunks: readonly Uint8Array[]): Promise<void> {
    if (this.finished) throw new StoreError(`ingest of blob ${this.digest} is already finished; cannot write`);
    if (this.failure) throw this.failure;
    let total = 0;
    for (const c of chunks) total += c.length;
    try {
      await this.digester.write(chunks.map(asBuffer));
      this.onDisk += total;
      this.landed();
    } catch (err) {
      // Bytes on disk and the digest may now disagree: refuse to commit; a reopen re-hashes the file.
      this.failure = this.writeFailure(err);
      throw this.failure;
    }
  }

  /** Bytes reached the file: followers read on; all of them: followers may read to the end. */
  private landed(): void {
    if (!this.board) return;
    this.board.progress(this.digest);
    if (this.expectedSize !== undefined && this.onDisk === this.expectedSize) this.board.fetched(this.digest);
  }

  /** A failed write of the data file: a full disk is NoSpaceError (ERR_NO_SPACE), anything else StoreError. */
  private writeFailure(err: unknown): StoreError {
    const what = `cannot write blob ${this.digest}`;
    const detail = (err as Error).message;
    return isNoSpace(err) ? new NoSpaceError(what, this.paths.dir, detail, { cause: err }) : new StoreError(`${what}: ${detail}`, { cause: err });
  }

  private track(p: Promise<void>): Promise<void> {
    this.inflight = p.catch(() => {});
    return p;
  }

  private async settle(): Promise<void> {
    await this.inflight;
  }

  /** One writer of the file at a time: a stream() that is still open excludes another stream(). */
  private assertNoStream(): void {
    if (this.activeStream && !this.activeStream.writableFinished && !this.activeStream.destroyed) {
      throw new StoreError(`ingest of blob ${this.digest}: a write stream is already open`);
    }
  }

  private assertOpen(): void {
    if (this.finished) throw new StoreError(`ingest of blob ${this.digest} is already committed, closed or aborted`);
  }

  private async writeState(): Promise<void> {
    const state: IngestState = {
      digest: this.digest,
      startedAt: this.startedAt,
      updatedAt: new Date().toISOString(),
      pid: process.pid,
    };
    if (this.expectedSize !== undefined) state.expectedSize = this.expectedSize;
    await writeFile(this.paths.state, JSON.stringify(state) + '\n', { mode: PRIVATE_FILE_MODE });
  }
}

function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** Feeds the first `size` bytes of `path` to the digester, streaming (a partial layer can be hundreds of MB). */
/** Ingested bytes are written, hashed and (read back rarely) dropped from the page cache behind the writes. */
function ingestDigester(fd: number, digest: Digest, path: string): DigestWriter {
  return createDigestWriter(fd, digestAlgorithm(digest), { dropBehind: true, name: path });
}

async function hashPrefix(path: string, size: number, digester: DigestWriter): Promise<number> {
  const stream = createReadStream(path, { start: 0, end: size - 1, highWaterMark: STREAM_HIGH_WATER_MARK });
  let seen = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    await digester.update([chunk]);
    seen += chunk.length;
  }
  if (seen !== size) await truncate(path, seen);
  return seen;
}

/**
 * A writer of a blob whose digest is known only at the end (a layer being made), keyed by a ref
 * as containerd's content writers are: `ingest/ref-<hash of ref>/`, under the ingest's lock, so
 * GC leaves it alone and two writers of one ref exclude each other. `commit(size, expected)`
 * checks what it is given, then the data becomes the blob named by its digest.
 */
export class RefIngestWriter {
  private digester: DigestWriter;
  private bytes = 0;
  private inflight: Promise<void> = Promise.resolve();
  private finished = false;

  private constructor(
    readonly ref: string,
    private readonly paths: IngestPaths,
    private readonly blobPathOf: (digest: Digest) => string,
    private readonly release: ReleaseLock,
    private fh: FileHandle,
  ) {
    this.digester = createDigestWriter(fh.fd, 'sha256', { name: paths.data });
  }

  static async open(ref: string, paths: IngestPaths, blobPathOf: (digest: Digest) => string, release: ReleaseLock): Promise<RefIngestWriter> {
    try {
      await mkdir(paths.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
      // A ref's earlier, unfinished attempt is not resumed: its digest was never known.
      const fh = await open(paths.data, 'w', PRIVATE_FILE_MODE);
      await writeFile(paths.state, JSON.stringify({ ref, startedAt: new Date().toISOString(), pid: process.pid }) + '\n', { mode: PRIVATE_FILE_MODE });
      return new RefIngestWriter(ref, paths, blobPathOf, release, fh);
    } catch (err) {
      await release().catch(() => {});
      throw new StoreError(`cannot open ingest ${JSON.stringify(ref)} in ${paths.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Bytes written so far. */
  get size(): number {
    return this.bytes;
  }

  /** Appends streamed bytes (writev batches, written and hashed off the main thread). */
  stream(): Writable {
    const append = (chunks: Buffer[], cb: (err?: Error | null) => void): void => {
      const p = this.append(chunks);
      this.inflight = p.catch(() => {});
      p.then(() => cb(), cb);
    };
    return new Writable({
      highWaterMark: STREAM_HIGH_WATER_MARK,
      write: (chunk: Buffer, _encoding, cb) => append([chunk], cb),
      writev: (chunks, cb) => append(chunks.map((c) => c.chunk as Buffer), cb),
    });
  }

  private async append(chunks: Buffer[]): Promise<void> {
    if (this.finished) throw new StoreError(`ingest ${JSON.stringify(this.ref)} is already finished; cannot write`);
    try {
      await this.digester.write(chunks);
      for (const c of chunks) this.bytes += c.length;
    } catch (err) {
      throw isNoSpace(err) ? new NoSpaceError(`cannot write ingest ${JSON.stringify(this.ref)}`, this.paths.dir, (err as Error).message, { cause: err }) : err;
    }
  }

  /**
   * Verifies `size` and `expected` when given, then the data becomes the blob named by its digest
   * (fsynced, renamed; a blob already stored is kept as it is). `beforeCommit` runs once the digest
   * is known and before the blob is visible (take a lease on it there).
   */
  async commit(size?: number, expected?: Digest, hooks: { beforeCommit?: (digest: Digest) => Promise<void> } = {}): Promise<BlobInfo> {
    if (this.finished) throw new StoreError(`ingest ${JSON.stringify(this.ref)} is already finished`);
    await this.inflight;
    this.finished = true;
    const digest = `sha256:${this.digester.digest()}` as Digest;
    const subject = `ingest ${JSON.stringify(this.ref)}`;
    try {
      if (size !== undefined && size !== this.bytes) throw new SizeMismatchError(subject, size, this.bytes);
      if (expected !== undefined && expected !== digest) throw new DigestMismatchError(subject, expected, digest);
      await hooks.beforeCommit?.(digest);
      const now = new Date();
      await this.fh.utimes(now, now);
      await this.fh.sync();
      await this.fh.close();
      const target = this.blobPathOf(digest);
      await mkdir(dirname(target), { recursive: true, mode: PRIVATE_DIR_MODE });
      await rename(this.paths.data, target);
      await fsyncDir(dirname(target));
      return { digest, size: this.bytes };
    } finally {
      await this.fh.close().catch(() => {});
      await unlink(this.paths.data).catch(() => {});
      await unlink(this.paths.state).catch(() => {});
      await this.release();
      await rmdir(this.paths.dir).catch(() => {});
    }
  }

  /** Drops what was written. Idempotent. */
  async abort(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.inflight;
    await this.fh.close().catch(() => {});
    await unlink(this.paths.data).catch(() => {});
    await unlink(this.paths.state).catch(() => {});
    await this.release();
    await rmdir(this.paths.dir).catch(() => {});
  }
}
