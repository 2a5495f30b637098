import type { BigIntStats } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import { readdirNames, underDir } from '../sys/byte-path.js';
import type { Writable } from 'node:stream';
import { lgetxattrs } from '../sys/native.js';
import { TreeTarWriter, type TreeTarOptions } from '../tar/tree-writer.js';

export interface DiffStats {
  /** Tar entries written, whiteouts included. */
  entries: number;
  /** `.wh.` entries: paths of `lower` that `upper` no longer has. */
  whiteouts: number;
}

/**
 * Writes the changes from the tree `lower` (a read-only view of the parent layers; undefined for
 * none) to the tree `upper` (the same layers plus the changes, e.g. a mounted writable snapshot)
 * as an OCI layer tar: what is new or different in `upper` with its metadata, a `.wh.NAME` for
 * each path that is gone (one for a whole removed directory), and every parent directory of a
 * change before it. Works on any backend, as containerd's walking differ does: two trees are
 * compared entry by entry (type, mode, owner, size, nanosecond mtime, link target, device
 * numbers, xattrs; content only when both mtimes are whole seconds and everything else agrees).
 * `options.epoch` clamps the mtimes written (not those compared).
 */
export async function writeTreeDiff(lower: string | undefined, upper: string, out: Writable, options: TreeTarOptions = {}): Promise<DiffStats> {
  const tar = new TreeTarWriter(out, options);
  let whiteouts = 0;
  /** Directories of upper already written (their metadata), so a change's parents go first, once. */
  const written = new Set<string>(['']);

  const ensureParents = async (rel: string): Promise<void> => {
    if (written.has(rel)) return;
    const slash = rel.lastIndexOf('/');
    await ensureParents(slash < 0 ? '' : rel.slice(0, slash));
    const abs = underDir(upper, rel);
    await tar.entry(abs, rel, await lstat(abs, { bigint: true }));
    written.add(rel);
  };

  const addTree = async (rel: string, st: BigIntStats): Promise<void> => {
    const abs = underDir(upper, rel);
    if (!(await tar.entry(abs, rel, st))) return;
    if (!st.isDirectory()) return;
    written.add(rel);
    for (const name of (await readdirNames(abs)).sort()) {
      const child = `${rel}/${name}`;
      await addTree(child, await lstat(underDir(upper, child), { bigint: true }));
    }
  };

  const walk = async (rel: string): Promise<void> => {
    const upperNames = (await readdirNames(underDir(upper, rel))).sort();
    const inUpper = new Set(upperNames);
    const lowerNames = new Set(lower === undefined ? [] : await readdirNames(underDir(lower, rel)).catch(() => [] as string[]));
    const join2 = (name: string) => (rel ? `${rel}/${name}` : name);
    for (const name of [...lowerNames].filter((n) => !inUpper.has(n)).sort()) {
      await ensureParents(rel);
      await tar.marker(join2(`.wh.${name}`));
      whiteouts++;
    }
    for (const name of upperNames) {
      const path = join2(name);
      const st = await lstat(underDir(upper, path), { bigint: true });
      const before = lowerNames.has(name) ? await lstat(underDir(lower!, path), { bigint: true }) : undefined;
      if (before === undefined || kind(before) !== kind(st)) {
        // New, or a different type: written whole (a file over a directory replaces it when applied).
        await ensureParents(rel);
        await addTree(path, st);
      } else if (st.isDirectory()) {
        if (!sameMeta(underDir(lower!, path), before, underDir(upper, path), st)) {
          await ensureParents(rel);
          await tar.entry(underDir(upper, path), path, st);
          written.add(path);
        }
        await walk(path);
      } else if (!(await sameEntry(underDir(lower!, path), before, underDir(upper, path), st))) {
        await ensureParents(rel);
        await tar.entry(underDir(upper, path), path, st);
      }
    }
  };

  await walk('');
  await tar.end();
  return { entries: tar.entries, whiteouts };
}

function kind(st: BigIntStats): number {
  return Number(st.mode & 0o170000n);
}

/**
 * Mode, owner, xattrs, and for a non-directory the mtime. A directory's mtime moves whenever an
 * entry in it changes, and that change writes the directory (with its mtime) anyway; only a
 * touched but otherwise unchanged directory is not carried, as with containerd.
 */
function sameMeta(aPath: Buffer, a: BigIntStats, bPath: Buffer, b: BigIntStats): boolean {
  if (a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid) return false;
  if (!a.isDirectory() && a.mtimeNs !== b.mtimeNs) return false;
  return sameXattrs(lgetxattrs(aPath), lgetxattrs(bPath));
}

async function sameEntry(aPath: Buffer, a: BigIntStats, bPath: Buffer, b: BigIntStats): Promise<boolean> {
  if (!sameMeta(aPath, a, bPath, b)) return false;
  if (a.isSymbolicLink()) return (await readlink(aPath, { encoding: 'buffer' })).equals(await readlink(bPath, { encoding: 'buffer' }));
  if (a.isCharacterDevice() || a.isBlockDevice()) return a.rdev === b.rdev;
  if (!a.isFile()) return true;
  if (a.size !== b.size) return false;
  // Same size and the same nanosecond mtime: unchanged, unless the filesystem keeps whole seconds only.
  if (a.mtimeNs % 1_000_000_000n !== 0n || b.mtimeNs % 1_000_000_000n !== 0n) return true;
  return sameContent(aPath, bPath, Number(a.size));
}

function sameXattrs(a: Record<string, Buffer>, b: Record<string, Buffer>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k]!.equals(b[k]!));
}

/** Byte-for-byte comparison of two files of the same size, 1 MiB at a time. */
async function sameContent(aPath: Buffer, bPath: Buffer, size: number): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(aPath, 'r'), open(bPath, 'r')]);
  try {
    const bufA = Buffer.allocUnsafe(Math.min(size, 1 << 20));
    const bufB = Buffer.allocUnsafe(bufA.length);
    for (let at = 0; at < size; ) {
      const want = Math.min(bufA.length, size - at);
      const [ra, rb] = await Promise.all([fa.read(bufA, 0, want, at), fb.read(bufB, 0, want, at)]);
      if (ra.bytesRead !== rb.bytesRead || ra.bytesRead === 0) return ra.bytesRead === rb.bytesRead;
      if (!bufA.subarray(0, ra.bytesRead).equals(bufB.subarray(0, rb.bytesRead))) return false;
      at += ra.bytesRead;
    }
    return true;
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}
