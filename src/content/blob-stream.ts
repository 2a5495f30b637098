import { close, createReadStream, read, type ReadStream } from 'node:fs';
import { dropCache } from '../sys/native.js';

export interface BlobReadOptions {
  /**
   * Drop what was read from the page cache as the stream goes (8 MiB windows), for a blob read
   * once and not again soon, such as a layer being unpacked: the read costs a bounded amount of
   * page cache instead of the blob's whole size.
   */
  dropBehind?: boolean;
  /** First byte to read (default 0). */
  start?: number;
  /** Last byte to read, inclusive (default: to the end). */
  end?: number;
}

const CHUNK = 1 << 20;
const DROP_WINDOW = 8 << 20;

/**
 * Tracks sequential reads of `fd` and drops what was read from the page cache in DROP_WINDOW
 * steps. Call it after each read with the bytes read (0 at EOF drops the rest).
 */
export function dropBehindReads(fd: number): (readEnd: number, bytesRead: number) => void {
  let dropped = 0;
  return (readEnd, bytesRead) => {
    if (readEnd - dropped >= DROP_WINDOW || (bytesRead === 0 && readEnd > dropped)) {
      dropCache(fd, dropped, readEnd - dropped);
      dropped = readEnd;
    }
  };
}

/** A stream of the blob open on `fd` (closed when the stream ends or is destroyed). */
export function blobReadStream(fd: number, options: BlobReadOptions = {}): ReadStream {
  const range = { ...(options.start !== undefined ? { start: options.start } : {}), ...(options.end !== undefined ? { end: options.end } : {}) };
  if (!options.dropBehind) return createReadStream('', { fd, highWaterMark: CHUNK, ...range });
  let readUpTo = options.start ?? 0;
  const dropBehind = dropBehindReads(fd);
  return createReadStream('', {
    fd,
    highWaterMark: CHUNK,
    ...range,
    fs: {
      open: () => {
        throw new Error('blobReadStream: the descriptor is already open');
      },
      close,
      read(fd: number, buffer: Buffer, offset: number, length: number, position: number | null, cb: (err: NodeJS.ErrnoException | null, n: number, b: Buffer) => void) {
        read(fd, buffer, offset, length, position, (err, n, b) => {
          if (!err) {
            readUpTo = (position ?? readUpTo) + n;
            dropBehind(readUpTo, n);
          }
          cb(err, n, b);
        });
      },
    },
  });
}
