import { closeSync, write, type BigIntStats } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { promisify } from 'node:util';
import { UnsafeEntryError } from '../errors.js';
import { loadNative, type EntryMeta, type NativeBinding } from '../sys/native.js';
import { bytesOf, quoteName, showName, underDir } from '../sys/byte-path.js';
import { ancestors, parentOf } from './entry-path.js';
import type { OverlayFixups } from './types.js';
import { isOverlayXattr } from './whiteout.js';

const writeAsync = promisify(write);
const lstatBig = (path: Buffer) => lstat(path, { bigint: true }).catch(() => undefined);

/**
 * Finishes an overlay layer extracted into `upperDir` against `lowerView`, the merged view of
 * the layers below it (mounted read-only): hardlinks to lower files become a copy-up of the
 * target plus a link to it, whiteouts that hide nothing are removed, and directories the layer
 * only implied take the metadata the layers below give them. Paths are resolved inside upperDir by the addon, as for the layer itself.
 */
export async function applyOverlayFixups(upperDir: string, lowerView: string, fixups: OverlayFixups, subject: string): Promise<void> {
  const binding = loadNative();
  const rootFd = binding.openRoot(upperDir);
  try {
    const inherit = new Set(fixups.inheritDirs);
    // Linking and removing below change directories' times, which the layer set: they are put back at the end.
    const touched = new Map<string, EntryMeta>();
    for (const path of [...fixups.lowerLinks.flatMap(({ path, target }) => [path, target]), ...fixups.whiteouts]) {
      const dir = parentOf(path);
      if (dir === '' || touched.has(dir) || inherit.has(dir)) continue;
      const st = await lstatBig(underDir(upperDir, dir));
      if (st?.isDirectory()) touched.set(dir, timesOf(st));
    }
    const copiedUp = new Set<string>();
    for (const { path, target, meta } of fixups.lowerLinks) {
      if (!copiedUp.has(target)) {
        const below = await lstatBig(underDir(lowerView, target));
        if (!below) throw new UnsafeEntryError(subject, showName(path), `hardlink target ${quoteName(target)} is neither in this layer nor in the layers below`);
        if (!below.isFile()) throw new UnsafeEntryError(subject, showName(path), `hardlink target ${quoteName(target)} in the layers below is not a regular file`);
        for (const dir of ancestors(target)) if (!(await exists(underDir(upperDir, dir)))) inherit.add(dir);
        await copyUp(binding, rootFd, underDir(lowerView, target), target, below);
        copiedUp.add(target);
      }
      await binding.applyBatch(rootFd, [{ op: 'hardlink', path, target }, { op: 'times', path, meta }]);
    }
    const hidingNothing: string[] = [];
    for (const path of fixups.whiteouts) if (!(await exists(underDir(lowerView, path)))) hidingNothing.push(path);
    if (hidingNothing.length > 0) await binding.applyBatch(rootFd, hidingNothing.map((path) => ({ op: 'remove' as const, path })));
    if (touched.size > 0) await binding.applyBatch(rootFd, [...touched].map(([path, meta]) => ({ op: 'times' as const, path, meta })));
    for (const dir of inherit) {
      const below = await lstatBig(underDir(lowerView, dir));
      if (below?.isDirectory()) await binding.applyBatch(rootFd, [{ op: 'mkdir', path: dir, meta: metaOf(below, underDir(lowerView, dir), binding) }]);
    }
  } finally {
    binding.closeFd(rootFd);
  }
}

async function copyUp(binding: NativeBinding, rootFd: number, from: Buffer, path: string, st: BigIntStats): Promise<void> {
  const fd = binding.createFile(rootFd, bytesOf(path), Number(st.mode & 0o7777n));
  try {
    const source = await open(from, 'r');
    try {
      const buffer = Buffer.allocUnsafe(1 << 20);
      for (let pos = 0; ; ) {
        const { bytesRead } = await source.read(buffer, 0, buffer.length, pos);
        if (bytesRead === 0) break;
        for (let off = 0; off < bytesRead; ) off += (await writeAsync(fd, buffer, off, bytesRead - off, pos + off)).bytesWritten;
        pos += bytesRead;
      }
    } finally {
      await source.close();
    }
    binding.finishFile(fd, metaOf(st, from, binding), showName(path));
  } finally {
    closeSync(fd);
  }
}

function timesOf(st: BigIntStats): EntryMeta {
  const second = 1_000_000_000n;
  return { mode: 0, uid: 0, gid: 0, atimeSec: Number(st.atimeNs / second), atimeNsec: Number(st.atimeNs % second), mtimeSec: Number(st.mtimeNs / second), mtimeNsec: Number(st.mtimeNs % second) };
}

async function exists(path: Buffer): Promise<boolean> {
  return (await lstat(path).catch(() => undefined)) !== undefined;
}

/** The entry's metadata as the layers below show it; overlayfs' own xattrs are not carried over (unless `keep` says so). */
export function metaOf(st: BigIntStats, absPath: Buffer, binding: Pick<NativeBinding, 'lgetxattrs'>, keep: (name: string) => boolean = () => false): EntryMeta {
  const xattrs: Record<string, Buffer> = {};
  for (const [name, value] of Object.entries(binding.lgetxattrs(absPath))) if (!isOverlayXattr(name) || keep(name)) xattrs[name] = value;
  const second = 1_000_000_000n;
  return {
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtimeSec: Number(st.mtimeNs / second),
    mtimeNsec: Number(st.mtimeNs % second),
    atimeSec: Number(st.atimeNs / second),
    atimeNsec: Number(st.atimeNs % second),
    xattrs,
  };
}
