/**
 * Snapshots of a directory tree, entry by entry, and a comparison that names every difference:
 * the proof that stratum's unpacked rootfs equals a reference unpacker's (umoci's).
 */
import assert from 'node:assert/strict';
import { loadNative } from '../../src/sys/native.js';
import { createHash } from 'node:crypto';
import { createReadStream, type BigIntStats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isUtf8 } from 'node:buffer';
import { pipeline } from 'node:stream/promises';


import { typeOf, type TreeEntryType } from '../../src/snapshotter/testsuite/tree.js';
export { typeOf, type TreeEntryType };

export interface TreeEntry {
  /** Relative to the snapshot's root, `/`-separated; the root itself is `.`. */
  path: string;
  type: TreeEntryType;
  /** Permission bits including setuid, setgid and sticky (st_mode & 07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files only. */
  size?: number;
  /** sha256 of a regular file's content, hex. */
  sha256?: string;
  /** Symlinks only. */
  target?: string;
  /** Character and block devices only: `major:minor`. */
  rdev?: string;
  /** Every extended attribute of the entry itself (symlinks not followed), by name. */
  xattrs: Record<string, Buffer>;
  /** For a non-directory that shares its inode with other entries of the tree: the smallest such path. */
  hardlinkGroup?: string;
  /** Modification time in nanoseconds since the epoch, as a decimal string. */
  mtimeNs: string;
}

export interface SnapshotOptions {
  /** Reads every xattr of one absolute path without following symlinks; default: see xattrReader(). */
  readXattrs?: XattrReader;
  /** Leave out a name readdir listed that lstat then does not find (ENOENT), instead of failing. */
  skipVanished?: boolean;
}

/** Reads all xattrs of the paths given (absolute) and returns them keyed by path. */
export type XattrReader = (root: string, paths: string[]) => Promise<Map<string, Record<string, Buffer>>>;

/** Walks `dir` (never following symlinks) and returns one entry per path, sorted by path. */
export async function snapshotTree(dir: string, opts: SnapshotOptions = {}): Promise<TreeEntry[]> {
  const root = resolve(dir);
  const found: { path: string; abs: string; absBytes: Buffer; st: BigIntStats }[] = [];
  // Names are read as bytes: a name that is not valid UTF-8 must be found again by lstat, and
  // it is shown with its invalid bytes escaped (\xNN) so two trees still compare by path.
  const walk = async (rel: string, absBytes: Buffer): Promise<void> => {
    const st = await lstat(absBytes, { bigint: true }).catch((err: NodeJS.ErrnoException) => {
      if (opts.skipVanished && err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!st) return;
    found.push({ path: rel, abs: absBytes.toString('utf8'), absBytes, st });
    if (!st.isDirectory()) return;
    const names = (await readdir(absBytes, { encoding: 'buffer' })).sort(Buffer.compare);
    for (const name of names) {
      const shown = showName(name);
      await walk(rel === '.' ? shown : `${rel}/${shown}`, Buffer.concat([absBytes, SLASH, name]));
    }
  };
  await walk('.', Buffer.from(root));

  const readXattrs = opts.readXattrs ?? (await xattrReader());
  // xattrs are read by (string) path: a path that is not valid UTF-8 cannot be named that way
  // and is recorded with no xattrs (the differential corpus gives such names none).
  const readable = found.filter((f) => isUtf8(f.absBytes));
  const xattrs = await readXattrs(
    root,
    readable.map((f) => f.abs),
  );

  const inodes = new Map<string, string[]>();
  for (const f of found) {
    if (f.st.isDirectory()) continue;
    const key = `${f.st.dev}:${f.st.ino}`;
    const group = inodes.get(key);
    if (group) group.push(f.path);
    else inodes.set(key, [f.path]);
  }

  const entries: TreeEntry[] = [];
  for (const f of found) {
    const { st } = f;
    const entry: TreeEntry = {
      path: f.path,
      type: typeOf(st),
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      xattrs: xattrs.get(f.abs) ?? {},
      mtimeNs: String(st.mtimeNs),
    };
    if (entry.type === 'file') {
      entry.size = Number(st.size);
      entry.sha256 = await hashFile(f.absBytes);
    } else if (entry.type === 'symlink') {
      entry.target = showName(await readlink(f.absBytes, { encoding: 'buffer' }));
    } else if (entry.type === 'char' || entry.type === 'block') {
      entry.rdev = `${major(st.rdev)}:${minor(st.rdev)}`;
    }
    if (!st.isDirectory()) {
      const group = inodes.get(`${st.dev}:${st.ino}`)!;
      if (group.length > 1) entry.hardlinkGroup = [...group].sort(comparePaths)[0];
    }
    entries.push(entry);
  }
  return entries.sort((a, b) => comparePaths(a.path, b.path));
}

/** glibc's gnu_dev_major / gnu_dev_minor. */
function major(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}
function minor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
}

/** Byte order of the UTF-8 paths (what `sort` in the C locale gives), so output is stable. */
function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

const SLASH = Buffer.from('/');

/** A name (or link target) as text: UTF-8 as is; when not valid UTF-8, every byte >= 0x80 as `\xNN`. */
export function showName(bytes: Buffer): string {
  if (isUtf8(bytes)) return bytes.toString('utf8');
  return Array.from(bytes, (b) => (b < 0x80 ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
}

async function hashFile(path: Buffer): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** Reads each path's own xattrs (symlinks included) through the native addon. */
export async function xattrReader(): Promise<XattrReader> {
  const native = loadNative();
  return async (_root, paths) => new Map(paths.map((p) => [p, native.lgetxattrs(p)]));
}

export interface CompareOptions {
  /** Paths (as in TreeEntry.path) left out of the comparison, e.g. `(p) => p === '.'`. */
  ignore?: (path: string) => boolean;
  /** Xattr names left out, e.g. `(n) => n.startsWith('trusted.overlay.')`. */
  ignoreXattr?: (name: string) => boolean;
  /** Compare mtimes too (default false). */
  mtimes?: boolean;
  /** Names of the two sides in messages; default `a` and `b`. */
  names?: [string, string];
}

/** Every difference between two snapshots, one readable line each; empty when they are equal. */
export function compareTrees(a: readonly TreeEntry[], b: readonly TreeEntry[], opts: CompareOptions = {}): string[] {
  const [nameA, nameB] = opts.names ?? ['a', 'b'];
  const ignore = opts.ignore ?? (() => false);
  const byPath = (entries: readonly TreeEntry[]) => new Map(entries.filter((e) => !ignore(e.path)).map((e) => [e.path, e]));
  const mapA = byPath(a);
  const mapB = byPath(b);
  const paths = [...new Set([...mapA.keys(), ...mapB.keys()])].sort(comparePaths);
  const diffs: string[] = [];
  for (const path of paths) {
    const ea = mapA.get(path);
    const eb = mapB.get(path);
    if (!eb) {
      diffs.push(`${path}: only in ${nameA} (${describe(ea!)})`);
      continue;
    }
    if (!ea) {
      diffs.push(`${path}: only in ${nameB} (${describe(eb)})`);
      continue;
    }
    const field = (what: string, va: unknown, vb: unknown) => {
      if (va !== vb) diffs.push(`${path}: ${what} ${nameA}=${show(va)} ${nameB}=${show(vb)}`);
    };
    if (ea.type !== eb.type) {
      field('type', ea.type, eb.type);
      continue;
    }
    field('mode', octal(ea.mode), octal(eb.mode));
    field('uid', ea.uid, eb.uid);
    field('gid', ea.gid, eb.gid);
    field('size', ea.size, eb.size);
    field('sha256', ea.sha256, eb.sha256);
    field('symlink target', ea.target, eb.target);
    field('device', ea.rdev, eb.rdev);
    field('hardlink group', ea.hardlinkGroup, eb.hardlinkGroup);
    if (opts.mtimes) field('mtime', nsToIso(ea.mtimeNs), nsToIso(eb.mtimeNs));
    const names = [...new Set([...Object.keys(ea.xattrs), ...Object.keys(eb.xattrs)])].filter((n) => !opts.ignoreXattr?.(n)).sort();
    for (const n of names) {
      const xa = ea.xattrs[n];
      const xb = eb.xattrs[n];
      if (xa && xb && xa.equals(xb)) continue;
      diffs.push(`${path}: xattr ${n} ${nameA}=${xa ? showBytes(xa) : '(absent)'} ${nameB}=${xb ? showBytes(xb) : '(absent)'}`);
    }
  }
  return diffs;
}

export interface AssertOptions extends CompareOptions {
  /** At most this many differences are listed in the failure message (default 100). */
  maxLines?: number;
}

/** Fails with every difference listed (up to maxLines) when the two snapshots differ. */
export function assertSameTree(a: readonly TreeEntry[], b: readonly TreeEntry[], opts: AssertOptions = {}): void {
  const diffs = compareTrees(a, b, opts);
  if (diffs.length === 0) return;
  const max = opts.maxLines ?? 100;
  const [nameA, nameB] = opts.names ?? ['a', 'b'];
  const shown = diffs.slice(0, max).map((d) => `  ${d}`);
  if (diffs.length > max) shown.push(`  … and ${diffs.length - max} more`);
  assert.fail(`trees ${nameA} and ${nameB} differ in ${diffs.length} way(s):\n${shown.join('\n')}`);
}

/** Snapshots both directories and asserts they are the same tree. */
export async function assertSameDirs(dirA: string, dirB: string, opts: AssertOptions & SnapshotOptions = {}): Promise<void> {
  const [a, b] = await Promise.all([snapshotTree(dirA, opts), snapshotTree(dirB, opts)]);
  assertSameTree(a, b, opts);
}

function describe(e: TreeEntry): string {
  const parts: string[] = [e.type, octal(e.mode), `${e.uid}:${e.gid}`];
  if (e.type === 'file') parts.push(`${e.size} bytes`);
  if (e.target !== undefined) parts.push(`-> ${e.target}`);
  if (e.rdev !== undefined) parts.push(e.rdev);
  return parts.join(' ');
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(4, '0')}`;
}

function show(v: unknown): string {
  return v === undefined ? '(none)' : typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** Printable ASCII as a quoted string, anything else as hex. */
function showBytes(b: Buffer): string {
  return b.every((c) => c >= 0x20 && c < 0x7f) ? JSON.stringify(b.toString('latin1')) : `0x${b.toString('hex')}`;
}

function nsToIso(ns: string): string {
  const n = BigInt(ns);
  const ms = n / 1_000_000n;
  const frac = String(n % 1_000_000_000n).padStart(9, '0');
  return `${new Date(Number(ms)).toISOString().slice(0, 19)}.${frac}Z`;
}
