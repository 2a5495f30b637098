import type { Readable, Writable } from 'node:stream';
import { TarReader } from './reader.js';
import { encodeHeader, END_OF_ARCHIVE, padding } from './writer.js';
import { drained } from '../sys/drained.js';

const ZEROS = Buffer.alloc(1 << 20);

/**
 * Copies the tar `input` to `out` in canonical form for a reproducible layer: each entry
 * re-encoded by our writer (ustar, PAX only where needed; no uname/gname, no atime/ctime,
 * GNU long names and sparse files written plainly), every mtime after `epoch` written as
 * `epoch`. Entry order, names, modes, owners, link targets, devices and xattrs are kept. Content
 * streams through (holes of sparse files as zeros); nothing is held whole in memory. Ends `out`.
 */
export async function normalizeTar(input: Readable, out: Writable, epoch: number): Promise<{ entries: number }> {
  const reader = new TarReader();
  let entries = 0;
  let size = 0;
  const write = async (chunk: Buffer) => {
    if (!out.write(chunk)) await drained(out);
  };
  const drain = async () => {
    for (let e = reader.next(); e; e = reader.next()) {
      switch (e.kind) {
        case 'entry': {
          const h = e.header;
          const late = h.mtime.sec > epoch || (h.mtime.sec === epoch && h.mtime.nsec > 0);
          size = h.type === 'file' ? h.size : 0;
          await write(
            encodeHeader({
              name: h.name,
              type: h.type,
              mode: h.mode,
              uid: h.uid,
              gid: h.gid,
              size,
              mtimeSec: late ? epoch : h.mtime.sec,
              mtimeNsec: late ? 0 : h.mtime.nsec,
              ...(h.type === 'symlink' || h.type === 'hardlink' ? { linkname: h.linkname } : {}),
              ...(h.type === 'char' || h.type === 'block' ? { devmajor: h.devmajor, devminor: h.devminor } : {}),
              ...(h.xattrs ? { xattrs: h.xattrs } : {}),
            }),
          );
          entries++;
          break;
        }
        case 'data':
          await write(e.chunk);
          break;
        case 'hole':
          for (let left = e.length; left > 0; left -= ZEROS.length) await write(ZEROS.subarray(0, Math.min(left, ZEROS.length)));
          break;
        case 'entryEnd':
          await write(padding(size));
          break;
      }
    }
  };
  for await (const chunk of input as AsyncIterable<Buffer>) {
    reader.push(chunk);
    await drain();
  }
  reader.finish();
  await drain();
  await write(END_OF_ARCHIVE);
  out.end();
  return { entries };
}
