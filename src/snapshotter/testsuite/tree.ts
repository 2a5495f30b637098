/**
 * A tree snapshot: every entry under a directory with what a filesystem comparison needs
 * (type, mode, owner, content hash, link target, xattrs, mtime in ns), and a diff that
 * names each difference by path. Used to compare a mounted snapshot with a flat reference.
 */
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { BigIntStats } from 'node:fs';

/** What kind of entry an lstat result describes. */
export type TreeEntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
export type EntryType = TreeEntryType;

/** The entry type an lstat result describes. */
export function typeOf(st: BigIntStats): TreeEntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

export interface TreeEntry {
  type: EntryType;
  /** Permission bits incl. setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  /** sha256 of a regular file's content. */
  sha256?: string;
  /** A symlink's target. */
  target?: string;
  /** xattr name → hex value. */
  xattrs: Record<string, string>;
  /** Not compared (overlay and copies renumber inodes); used for hardlink groups. */
  ino: bigint;
}

/** Reads all xattrs of a path without following a symlink. */
export type XattrReader = (absPath: string) => Record<string, Buffer>;

export type Tree = Map<string, TreeEntry>;

/** Every entry under `root` keyed by its relative path; the root itself is ".". */
export async function snapshotTree(root: string, readXattrs?: XattrReader): Promise<Tree> {
  const tree: Tree = new Map();
  async function visit(rel: string): Promise<void> {
    const abs = rel === '.' ? root : join(root, rel);
    const st = await lstat(abs, { bigint: true });
    const type = typeOf(st);
    const entry: TreeEntry = {
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeNs: st.mtimeNs,
      xattrs: {},
      ino: st.ino,
    };
    if (readXattrs) {
      for (const [name, value] of Object.entries(readXattrs(abs))) entry.xattrs[name] = value.toString('hex');
    }
    if (type === 'file') entry.sha256 = createHash('sha256').update(await readFile(abs)).digest('hex');
    if (type === 'symlink') entry.target = await readlink(abs);
    tree.set(rel, entry);
    if (type === 'dir') {
      const names = (await readdir(abs)).sort();
      for (const name of names) await visit(rel === '.' ? name : `${rel}/${name}`);
    }
  }
  await visit('.');
  return tree;
}

export interface DiffOptions {
  /** Compare mtimes (default true). */
  mtimes?: boolean;
  /** Paths whose own attributes are not compared (their presence still is). */
  ignoreAttrsOf?: string[];
}

/** Human-readable differences, one per line, each naming the path; empty when equal. */
export function diffTrees(expected: Tree, actual: Tree, options: DiffOptions = {}): string[] {
  const out: string[] = [];
  const compareMtimes = options.mtimes ?? true;
  const ignore = new Set(options.ignoreAttrsOf ?? []);
  for (const [path, want] of expected) {
    const got = actual.get(path);
    if (!got) {
      out.push(`${path}: missing (want ${want.type})`);
      continue;
    }
    if (got.type !== want.type) {
      out.push(`${path}: type ${got.type}, want ${want.type}`);
      continue;
    }
    if (ignore.has(path)) continue;
    const oct = (n: number): string => `0${n.toString(8)}`;
    if (got.mode !== want.mode) out.push(`${path}: mode ${oct(got.mode)}, want ${oct(want.mode)}`);
    if (got.uid !== want.uid || got.gid !== want.gid) out.push(`${path}: owner ${got.uid}:${got.gid}, want ${want.uid}:${want.gid}`);
    if (got.sha256 !== want.sha256) out.push(`${path}: content differs`);
    if (got.target !== want.target) out.push(`${path}: link target ${got.target}, want ${want.target}`);
    const gx = JSON.stringify(sortKeys(got.xattrs));
    const wx = JSON.stringify(sortKeys(want.xattrs));
    if (gx !== wx) out.push(`${path}: xattrs ${gx}, want ${wx}`);
    if (compareMtimes && got.mtimeNs !== want.mtimeNs) out.push(`${path}: mtime ${got.mtimeNs} ns, want ${want.mtimeNs} ns`);
  }
  for (const [path, got] of actual) if (!expected.has(path)) out.push(`${path}: unexpected ${got.type}`);
  return out;
}

function sortKeys(r: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Groups of paths of regular files that share an inode (only groups of two or more), sorted. */
export function hardlinkGroups(tree: Tree): string[][] {
  const byIno = new Map<bigint, string[]>();
  for (const [path, e] of tree) {
    if (e.type !== 'file') continue;
    const group = byIno.get(e.ino) ?? [];
    group.push(path);
    byIno.set(e.ino, group);
  }
  return [...byIno.values()]
    .filter((g) => g.length > 1)
    .map((g) => g.sort())
    .sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
}

/** Just the paths and types, for "exactly these entries" assertions. */
export function listing(tree: Tree): string[] {
  return [...tree].filter(([p]) => p !== '.').map(([p, e]) => (e.type === 'dir' ? `${p}/` : e.type === 'symlink' ? `${p}@` : p));
}
