import type { DigestWriter } from '../sys/native.js';
import type { Readable, Writable } from 'node:stream';
import type { BlobReadOptions } from './blob-stream.js';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/types.js';

/**
 * The content store's small interfaces (containerd's `content` package, trimmed).
 * Implemented by `OciStore` in ./store.ts on an OCI image layout directory.
 */

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/**
 * One in-progress download of one blob. Bytes written go to a temp file inside the store
 * and through the digester; nothing is visible under blobs/ before commit() has checked
 * size and digest. close() keeps the partial file so a later ingest of the same digest
 * resumes at `offset`.
 */
/** A body that can hand its bytes to a native DigestWriter (registry/transport/native-tls.ts NativeBody). */
export interface NativeBodySource {
  receiveInto(writer: DigestWriter, maxBytes: number): Promise<number>;
}

export interface IngestWriter {
  readonly digest: Digest;
  /** Bytes already on disk (and hashed) when this writer was opened or last reset. */
  readonly offset: number;
  /**
   * Optional: bytes on disk and hashed right now (offset + what stream() has persisted since).
   * After a stream() writable failed mid-way, the next stream() appends at `written`, so a
   * downloader can re-request from there with the same writer. Without it, downloaders close()
   * the writer and ingest() again to learn where to resume.
   */
  readonly written?: number;
  /** Appends streamed bytes; use with stream.pipeline(body, writer.stream()). */
  stream(): Writable;
  /**
   * Optional: appends up to maxBytes of a native body, TLS or plain HTTP (received,
   * written and hashed in C). Resolves with the count; on a failure, what landed is counted in
   * `written` and the writer stays usable (a network error) or refuses to commit (a write error).
   */
  receive?(body: NativeBodySource, maxBytes: number): Promise<number>;
  /** Drops the partial data and starts again from byte 0 (the registry ignored Range). */
  reset(): Promise<void>;
  /**
   * Verifies size (when known) and digest, fsyncs, renames into blobs/. Releases the lock.
   * `onVerified` is called once the content is known good, before the fsync and rename, with the
   * path of the verified data: a reader may open it there and go on reading after the rename.
   */
  commit(expectedSize?: number, hooks?: { onVerified?: (path: string) => void }): Promise<BlobInfo>;
  /** Releases the lock and keeps partial bytes for a later resume. Idempotent. */
  close(): Promise<void>;
  /** Releases the lock and deletes the partial bytes. Idempotent. */
  abort(): Promise<void>;
}

export interface IngestOptions {
  /** Size from the descriptor when known (schema1 layers have none). */
  expectedSize?: number;
  /** How long to wait for another process holding this ingest's lock. Default: forever (with stale-lock detection). */
  lockTimeoutMs?: number;
}

export interface Provider {
  has(digest: Digest): Promise<boolean>;
  info(digest: Digest): Promise<BlobInfo | undefined>;
  /** A stream of a committed blob; throws NotFoundError. */
  open(digest: Digest, options?: BlobReadOptions): Readable;
  /** Reads a small committed blob whole (manifests, configs), refusing anything over maxBytes. */
  read(digest: Digest, maxBytes?: number): Promise<Buffer>;
}

export interface Ingester {
  /**
   * Opens (or resumes) an ingest of `digest`. Returns null when the blob is already committed,
   * also when another process committed it while this one waited for the lock.
   */
  ingest(digest: Digest, options?: IngestOptions): Promise<IngestWriter | null>;
  /** Writes a small blob (manifest, config) whole, verifying `expected` when given. */
  put(data: Uint8Array, expected?: Digest): Promise<BlobInfo>;
}

export interface TaggedImage {
  /** Fully qualified reference, e.g. docker.io/library/ubuntu:15.04 (the ref.name annotation). */
  name: string;
  descriptor: Descriptor;
}

export interface TagStore {
  listTags(): Promise<TaggedImage[]>;
  getTag(name: string): Promise<TaggedImage | undefined>;
  /** Adds or replaces the index.json entry for name, atomically. */
  setTag(name: string, descriptor: Descriptor): Promise<void>;
  removeTag(name: string): Promise<boolean>;
}
