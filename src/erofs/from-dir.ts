import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { readdirNames, readlinkName, underDir } from '../sys/byte-path.js';
import { loadNative, type FsOp } from '../sys/native.js';
import { metaOf } from '../unpack/overlay-fixups.js';
import type { ImageStats } from './image.js';
import { PendingImage } from './build.js';

/** The overlay xattrs an upper directory's layer keeps: what says "deleted" or "opaque" to the layers below. */
const KEPT_OVERLAY_XATTRS = new Set(['trusted.overlay.opaque', 'trusted.overlay.whiteout', 'user.overlay.opaque', 'user.overlay.whiteout']);
const keep = (name: string) => KEPT_OVERLAY_XATTRS.has(name);

/**
 * Writes the tree under `dir` (an overlay upper directory: char 0/0 whiteouts and opaque xattrs
 * stay as they are) as an EROFS image at `imagePath`; hardlinks stay one inode. Walked directly,
 * not through a tar: as layer input the opaque xattrs would be dropped (a layer must not carry
 * them), and here they are the layer. overlayfs' bookkeeping (origin, impure…) is left out.
 */
export async function writeDirImage(dir: string, imagePath: string, subject: string): Promise<ImageStats> {
  const image = PendingImage.create(imagePath, subject);
  const binding = loadNative();
  const seen = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdirNames(underDir(dir, rel))) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const abs = underDir(dir, path);
      const st = await lstat(abs, { bigint: true });
      const meta = metaOf(st, abs, binding, keep);
      const inode = `${st.dev}:${st.ino}`;
      const first = !st.isDirectory() && st.nlink > 1n ? seen.get(inode) : undefined;
      let op: FsOp | undefined;
      if (first !== undefined) op = { op: 'hardlink', path, target: first };
      else if (st.isDirectory()) op = { op: 'mkdir', path, meta };
      else if (st.isSymbolicLink()) op = { op: 'symlink', path, target: await readlinkName(abs), meta };
      else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const rdev = st.rdev;
        const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
        const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
        op = { op: 'mknod', path, kind: st.isCharacterDevice() ? 'char' : 'block', major, minor, meta };
      } else if (st.isFIFO()) op = { op: 'mknod', path, kind: 'fifo', major: 0, minor: 0, meta };
      else if (st.isFile()) {
        await image.tree.addStreamedFile(path, meta, createReadStream(abs, { highWaterMark: 1 << 20 }));
        if (st.nlink > 1n) seen.set(inode, path);
      }
      if (op) await image.tree.applyBatch(0, [op]);
      if (st.isDirectory()) await walk(path);
    }
  };
  try {
    const root = await lstat(dir, { bigint: true });
    await walk('');
    await image.tree.applyBatch(0, [{ op: 'mkdir', path: '', meta: metaOf(root, Buffer.from(dir), binding, keep) }]);
  } catch (err) {
    await image.abort();
    throw err;
  }
  return image.finish();
}
