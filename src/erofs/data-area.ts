import { writev } from 'node:fs';
import { promisify } from 'node:util';
import { BLOCK_SIZE } from './format.js';

const writevAsync = promisify(writev);
/** Buffers gathered before one writev goes out (one in flight while more arrive). */
const FLUSH_BYTES = 2 << 20;
/** Linux's IOV_MAX. */
const MAX_IOV = 1024;
const ZEROS = Buffer.alloc(BLOCK_SIZE);
/** Bytes handed to writes that have not finished, beyond which room() waits (backpressure). */
const MAX_UNWRITTEN = 4 << 20;

/**
 * The image's data area, written front to back: every file's blocks start on a block boundary
 * and the gap after its last byte is a slice of one shared zero block, so consecutive files form
 * one contiguous run that goes out as large writev calls on the thread pool, one in flight.
 * Buffers are held (not copied) until written: they may be views of the tar stream's chunks.
 */
export class DataArea {
  /** Byte offset where the next byte goes (block-aligned between files). */
  private end: number;
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  /** Offset of the first queued byte. */
  private queuedAt: number;
  /** Writes handed out, oldest first; each starts when the one before it ended. */
  private inflight: Promise<void>[] = [];
  private unwritten = 0;
  private failure: unknown;

  constructor(
    private readonly fd: number,
    startBlock: number,
  ) {
    this.end = startBlock * BLOCK_SIZE;
    this.queuedAt = this.end;
  }

  /** The block the next file starts at. */
  get nextBlock(): number {
    return Math.ceil(this.end / BLOCK_SIZE);
  }

  /** Starts a file's data at the next block boundary; returns its first block. */
  begin(): number {
    this.pad();
    return this.end / BLOCK_SIZE;
  }

  /** Appends bytes to the current file. */
  append(chunk: Buffer): void {
    if (this.failure !== undefined) throw this.failure;
    if (chunk.length === 0) return;
    this.queued.push(chunk);
    this.queuedBytes += chunk.length;
    this.end += chunk.length;
    if (this.queuedBytes >= FLUSH_BYTES || this.queued.length >= MAX_IOV) this.dispatch();
  }

  /** Appends `length` zero bytes (a hole of a sparse file: EROFS plain data has none). */
  zeros(length: number): void {
    while (length > 0) {
      const n = Math.min(length, BLOCK_SIZE);
      this.append(ZEROS.subarray(0, n));
      length -= n;
    }
  }

  /** Waits for every byte appended so far to be written; returns the first block after them. */
  async flush(): Promise<number> {
    this.pad();
    this.dispatch();
    while (this.inflight.length > 0) await this.inflight[0];
    if (this.failure !== undefined) throw this.failure;
    return this.end / BLOCK_SIZE;
  }

  /** Resolves once the bytes not yet on disk are few enough to take more. */
  async room(): Promise<void> {
    while (this.unwritten > MAX_UNWRITTEN && this.inflight.length > 0) await this.inflight[0];
    if (this.failure !== undefined) throw this.failure;
  }

  /** After a failure: lets the write in flight end before the fd is closed. */
  async settle(): Promise<void> {
    this.queued = [];
    while (this.inflight.length > 0) await this.inflight[0]!.catch(() => {});
  }

  private pad(): void {
    const rest = this.end % BLOCK_SIZE;
    if (rest !== 0) this.append(ZEROS.subarray(0, BLOCK_SIZE - rest));
  }

  private dispatch(): void {
    if (this.queued.length === 0) return;
    const buffers = this.queued;
    const at = this.queuedAt;
    const bytes = this.queuedBytes;
    this.queued = [];
    this.queuedAt += bytes;
    this.queuedBytes = 0;
    this.unwritten += bytes;
    const previous = this.inflight[this.inflight.length - 1];
    const run: Promise<void> = (async () => {
      if (previous) await previous;
      if (this.failure !== undefined) return;
      try {
        await writeAll(this.fd, buffers, at);
      } catch (err) {
        this.failure = err;
      }
    })().finally(() => {
      this.unwritten -= bytes;
      this.inflight.splice(this.inflight.indexOf(run), 1);
    });
    this.inflight.push(run);
  }
}

async function writeAll(fd: number, buffers: Buffer[], position: number): Promise<void> {
  let rest = buffers;
  while (rest.length > 0) {
    let written = (await writevAsync(fd, rest, position)).bytesWritten;
    position += written;
    let i = 0;
    while (i < rest.length && written >= rest[i]!.length) written -= rest[i++]!.length;
    rest = rest.slice(i);
    if (written > 0) rest[0] = rest[0]!.subarray(written);
  }
}
