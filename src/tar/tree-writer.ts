import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import type { Writable } from 'node:stream';
import { readlinkName, showName } from '../sys/byte-path.js';
import { drained } from '../sys/drained.js';
import { lgetxattrs } from '../sys/native.js';
import { encodeHeader, END_OF_ARCHIVE, padding, type TarEntryHeader } from './writer.js';

/**
 * Writes filesystem entries as tar, one lstat'ed entry at a time: mode (0000 included), owner,
 * nanosecond mtime, xattrs (PAX, byte for byte), hardlinks as links to the first path written,
 * devices, fifos; file content streamed with the output's backpressure honoured. What to write
 * and in which order is the caller's (a whole tree for export, the changes for a layer diff).
 */
export interface TreeTarOptions {
  /**
   * Reproducible output (SOURCE_DATE_EPOCH): every mtime later than this many seconds since
   * 1970 is written as exactly this; earlier ones are kept. Unset: mtimes as they are.
   */
  epoch?: number;
}

export class TreeTarWriter {
  private readonly firstPathOfInode = new Map<string, string>();
  entries = 0;

  constructor(
    private readonly out: Writable,
    private readonly options: TreeTarOptions = {},
  ) {}

  /** The mtime to write: clamped to the epoch when one is set. */
  private mtime(st: BigIntStats): { mtimeSec: number; mtimeNsec: number } {
    const epoch = this.options.epoch;
    if (epoch !== undefined && st.mtimeNs > BigInt(epoch) * 1_000_000_000n) return { mtimeSec: epoch, mtimeNsec: 0 };
    return { mtimeSec: Number(st.mtimeNs / 1_000_000_000n), mtimeNsec: Number(st.mtimeNs % 1_000_000_000n) };
  }

  /**
   * Writes `abs` (already lstat'ed) as `path` (a byte string), with `xattrs` when given (else
   * its own); false for what tar does not hold (sockets).
   */
  async entry(abs: Buffer, path: string, st: BigIntStats, xattrs?: Record<string, Buffer>): Promise<boolean> {
    const base = {
      name: path,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      ...this.mtime(st),
      xattrs: xattrs ?? lgetxattrs(abs),
    };
    const inode = `${st.dev}:${st.ino}`;
    let header: TarEntryHeader;
    if (!st.isDirectory() && st.nlink > 1n && this.firstPathOfInode.has(inode)) {
      header = { ...base, type: 'hardlink', linkname: this.firstPathOfInode.get(inode)!, xattrs: {} };
    } else if (st.isFile()) {
      if (st.nlink > 1n) this.firstPathOfInode.set(inode, path);
      header = { ...base, type: 'file', size: Number(st.size) };
    } else if (st.isDirectory()) {
      header = { ...base, type: 'dir' };
    } else if (st.isSymbolicLink()) {
      header = { ...base, type: 'symlink', linkname: await readlinkName(abs) };
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const rdev = st.rdev;
      const devmajor = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
      const devminor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
      header = { ...base, type: st.isCharacterDevice() ? 'char' : 'block', devmajor, devminor };
    } else if (st.isFIFO()) {
      header = { ...base, type: 'fifo' };
    } else {
      return false; // sockets are not archived (GNU tar skips them too)
    }
    await this.write(encodeHeader(header));
    if (header.type === 'file') await this.copyContent(abs, header.size!);
    this.entries++;
    return true;
  }

  /** An empty regular file entry, e.g. a `.wh.` whiteout. */
  async marker(path: string): Promise<void> {
    await this.write(encodeHeader({ name: path, type: 'file', mode: 0, uid: 0, gid: 0, size: 0, mtimeSec: 0 }));
    this.entries++;
  }

  /** Ends the archive and the output stream. */
  async end(): Promise<void> {
    await this.write(END_OF_ARCHIVE);
    this.out.end();
    await once(this.out, 'finish');
  }

  private async write(chunk: Buffer): Promise<void> {
    if (this.out.destroyed) throw this.out.errored ?? new Error('the tar output was closed before the archive was complete');
    if (!this.out.write(chunk)) await drained(this.out);
  }

  private async copyContent(abs: Buffer, size: number): Promise<void> {
    let copied = 0;
    for await (const chunk of createReadStream(abs, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      const take = chunk.subarray(0, size - copied); // a file that grew meanwhile: the header's size wins
      copied += take.length;
      await this.write(take);
      if (copied === size) break;
    }
    if (copied < size) throw new Error(`${showName(abs.toString('latin1'))} shrank while it was archived (${copied} of ${size} bytes)`);
    await this.write(padding(size));
  }
}

