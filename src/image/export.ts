import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { once } from 'node:events';
import { lgetxattrs } from '../sys/native.js';
import { encodeHeader, END_OF_ARCHIVE, padding, type TarEntryHeader } from '../unpack/tar-writer.js';

/**
 * Writes the tree under `dir` as a tar stream: every entry with its mode (0000 included), owner,
 * nanosecond mtime, xattrs (PAX, byte for byte), hardlinks as links to the first path seen,
 * devices and fifos; entries sorted by name so the same tree always gives the same tar. Files
 * are streamed, never read whole; the output's backpressure is honoured.
 */
export async function writeTreeAsTar(dir: string, out: Writable): Promise<{ entries: number }> {
  const firstPathOfInode = new Map<bigint, string>();
  let entries = 0;

  const write = async (chunk: Buffer): Promise<void> => {
    if (!out.write(chunk)) await once(out, 'drain');
  };

  async function walk(rel: string): Promise<void> {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const abs = join(dir, path);
      const st = await lstat(abs, { bigint: true });
      const base = {
        name: path,
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtimeSec: Number(st.mtimeNs / 1_000_000_000n),
        mtimeNsec: Number(st.mtimeNs % 1_000_000_000n),
        xattrs: lgetxattrs(abs),
      };
      let header: TarEntryHeader;
      if (!st.isDirectory() && st.nlink > 1n && firstPathOfInode.has(st.ino)) {
        header = { ...base, type: 'hardlink', linkname: firstPathOfInode.get(st.ino)!, xattrs: {} };
      } else if (st.isFile()) {
        if (st.nlink > 1n) firstPathOfInode.set(st.ino, path);
        header = { ...base, type: 'file', size: Number(st.size) };
      } else if (st.isDirectory()) {
        header = { ...base, type: 'dir' };
      } else if (st.isSymbolicLink()) {
        header = { ...base, type: 'symlink', linkname: await readlink(abs) };
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const rdev = st.rdev;
        const devmajor = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
        const devminor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
        header = { ...base, type: st.isCharacterDevice() ? 'char' : 'block', devmajor, devminor };
      } else if (st.isFIFO()) {
        header = { ...base, type: 'fifo' };
      } else {
        continue; // sockets are not archived (GNU tar skips them too)
      }
      await write(encodeHeader(header));
      if (header.type === 'file') await copyContent(abs, header.size!);
      entries++;
      if (header.type === 'dir') await walk(path);
    }
  }

  async function copyContent(abs: string, size: number): Promise<void> {
    let copied = 0;
    for await (const chunk of createReadStream(abs, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      const take = chunk.subarray(0, size - copied); // a file that grew meanwhile: the header's size wins
      copied += take.length;
      await write(take);
      if (copied === size) break;
    }
    if (copied < size) throw new Error(`${abs} shrank while it was exported (${copied} of ${size} bytes)`);
    await write(padding(size));
  }

  await walk('');
  await write(END_OF_ARCHIVE);
  out.end();
  await once(out, 'finish');
  return { entries };
}
