import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { DigestMismatchError, SizeMismatchError } from '../../errors.js';
import { digestAlgorithm, type Digest } from '../../oci/digest.js';
import { encodeHeader, END_OF_ARCHIVE, padding } from '../../tar/writer.js';

/** Every entry gets this mtime (the epoch, as Docker 25 gives its metadata files): the same images always give the same archive. */
const MTIME = 0;

/**
 * Writes an image archive's entries to `out`: directories, small files from memory and blobs
 * streamed from the store (checked against their digest as they pass, never held whole), with
 * the output's backpressure honoured.
 */
export class ArchiveTarWriter {
  private readonly dirs = new Set<string>();
  bytes = 0;

  constructor(private readonly out: Writable) {}

  /** A directory entry (once per path). */
  async dir(path: string): Promise<void> {
    if (this.dirs.has(path)) return;
    this.dirs.add(path);
    await this.write(encodeHeader({ name: path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeSec: MTIME }));
  }

  /** A file whose bytes are in memory. */
  async file(path: string, data: Buffer): Promise<void> {
    await this.write(encodeHeader({ name: path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: data.length, mtimeSec: MTIME }));
    await this.write(data);
    await this.write(padding(data.length));
  }

  /**
   * A file of `size` bytes streamed from `source`, which must hash to `digest`: a store blob
   * that changed or rotted fails the save here instead of giving an archive no loader accepts.
   */
  async blob(path: string, digest: Digest, size: number, source: Readable): Promise<void> {
    await this.write(encodeHeader({ name: path, type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtimeSec: MTIME }));
    const hash = createHash(digestAlgorithm(digest));
    let copied = 0;
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        if (copied + chunk.length > size) throw new SizeMismatchError(`stored blob ${digest}`, size, copied + chunk.length, true);
        hash.update(chunk);
        copied += chunk.length;
        await this.write(chunk);
      }
    } finally {
      source.destroy();
    }
    if (copied !== size) throw new SizeMismatchError(`stored blob ${digest}`, size, copied);
    const actual = `${digestAlgorithm(digest)}:${hash.digest('hex')}`;
    if (actual !== digest) throw new DigestMismatchError(`stored blob ${digest}`, digest, actual);
    await this.write(padding(size));
  }

  /** The end-of-archive blocks; the output is ended and flushed. */
  async end(): Promise<void> {
    await this.write(END_OF_ARCHIVE);
    this.out.end();
    await once(this.out, 'finish');
  }

  private async write(chunk: Buffer): Promise<void> {
    // A closed output never drains: fail instead of waiting for it.
    if (this.out.errored) throw this.out.errored;
    if (this.out.destroyed || this.out.writableEnded) throw new Error('the output stream was closed before the archive was complete');
    this.bytes += chunk.length;
    if (!this.out.write(chunk)) await once(this.out, 'drain');
  }
}
