/**
 * Seeded random change sets for the long-chain test: each op is applied identically to a
 * mounted snapshot and to a flat reference directory. Ops that would expose overlay's
 * documented hardlink copy-up split (index=off) — changing one name of a hardlinked file in
 * place — are never generated, since the flat reference cannot show that split.
 */
import { chmod, chown, lchown, link, lutimes, lstat, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Xattrs } from './xattr.js';

export type Rng = () => number;

/** mulberry32: small, fast, deterministic. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(r: Rng, list: readonly T[]): T => list[Math.floor(r() * list.length)]!;

interface ModelEntry {
  type: 'file' | 'dir' | 'symlink';
  /** Ever had a second name: never changed in place again. */
  linked: boolean;
}

export interface Op {
  desc: string;
  apply(dir: string): Promise<void>;
}

export interface ChangeSet {
  ops: Op[];
  /** Paths whose mtime the ops changed in a plain directory: they get a fixed time in both trees. */
  touched: Set<string>;
}

const FILE_MODES = [0o644, 0o600, 0o755, 0o4755, 0o2711, 0o640, 0o444];
const DIR_MODES = [0o755, 0o700, 0o711, 0o1777, 0o2755, 0o750];
const OWNERS: [number, number][] = [[0, 0], [1000, 1000], [1001, 50], [65534, 65534]];
const SIZES = [0, 1, 100, 4096, 4097, 20_000];

const parentOf = (p: string): string => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '.');
const childOf = (dir: string, name: string): string => (dir === '.' ? name : `${dir}/${name}`);

/** The state of the reference tree as far as op generation needs it. */
export class Model {
  readonly entries = new Map<string, ModelEntry>([['.', { type: 'dir', linked: false }]]);

  private all(filter: (p: string, e: ModelEntry) => boolean): string[] {
    return [...this.entries].filter(([p, e]) => filter(p, e)).map(([p]) => p).sort();
  }
  dirs(): string[] {
    return this.all((_, e) => e.type === 'dir');
  }
  /** Everything but the root. */
  nonRoot(): string[] {
    return this.all((p) => p !== '.');
  }
  unlinkedFiles(): string[] {
    return this.all((_, e) => e.type === 'file' && !e.linked);
  }
  removeTree(p: string): void {
    for (const key of [...this.entries.keys()]) if (key === p || key.startsWith(`${p}/`)) this.entries.delete(key);
  }
}

/** One layer's changes, generated from (and applied to) the model. */
export function changeSet(r: Rng, model: Model, layer: number, x: Xattrs | undefined): ChangeSet {
  const ops: Op[] = [];
  const touched = new Set<string>(['.']);
  const count = 4 + Math.floor(r() * 5);
  for (let k = 0; k < count; k++) {
    const op = oneOp(r, model, `${layer}_${k}`, touched, x);
    if (op) ops.push(op);
  }
  return { ops, touched };
}

function content(r: Rng, tag: string): Buffer {
  const size = pick(r, SIZES);
  const b = Buffer.alloc(size);
  const seed = Math.floor(r() * 256);
  for (let i = 0; i < size; i++) b[i] = (seed + i * 31 + tag.length) & 0xff;
  if (size >= tag.length) b.write(tag, 0);
  return b;
}

function oneOp(r: Rng, m: Model, tag: string, touched: Set<string>, x: Xattrs | undefined): Op | undefined {
  // Grow to about a hundred entries, then hold there: removals balance creations.
  const crowded = m.entries.size > 100;
  const roll = r();
  const dirs = m.dirs();
  const parent = pick(r, dirs);
  if (roll < (crowded ? 0.15 : 0.27)) {
    const p = childOf(parent, `f${tag}`);
    const data = content(r, tag);
    const mode = pick(r, FILE_MODES);
    const [uid, gid] = pick(r, OWNERS);
    m.entries.set(p, { type: 'file', linked: false });
    touched.add(p).add(parent);
    return {
      desc: `create file ${p} (${data.length} B, 0${mode.toString(8)}, ${uid}:${gid})`,
      async apply(dir) {
        await writeFile(join(dir, p), data);
        await chown(join(dir, p), uid, gid);
        await chmod(join(dir, p), mode);
      },
    };
  }
  if (roll < 0.42) {
    const files = m.unlinkedFiles();
    if (files.length === 0) return undefined;
    const p = pick(r, files);
    const data = content(r, `over${tag}`);
    const mode = r() < 0.5 ? pick(r, FILE_MODES) : undefined;
    touched.add(p);
    return {
      desc: `overwrite ${p} (${data.length} B${mode !== undefined ? `, 0${mode.toString(8)}` : ''})`,
      async apply(dir) {
        await writeFile(join(dir, p), data);
        if (mode !== undefined) await chmod(join(dir, p), mode);
      },
    };
  }
  if (roll < (crowded ? 0.75 : 0.48)) {
    const candidates = m.nonRoot();
    if (candidates.length === 0) return undefined;
    const p = pick(r, candidates);
    m.removeTree(p);
    touched.add(parentOf(p));
    return { desc: `remove ${p}`, apply: (dir) => rm(join(dir, p), { recursive: true }) };
  }
  if (roll < 0.66) {
    const p = childOf(parent, `d${tag}`);
    const mode = pick(r, DIR_MODES);
    const [uid, gid] = pick(r, OWNERS);
    m.entries.set(p, { type: 'dir', linked: false });
    touched.add(p).add(parent);
    return {
      desc: `mkdir ${p} (0${mode.toString(8)}, ${uid}:${gid})`,
      async apply(dir) {
        await mkdir(join(dir, p));
        await chown(join(dir, p), uid, gid);
        await chmod(join(dir, p), mode);
      },
    };
  }
  if (roll < 0.73) {
    const candidates = dirs.filter((d) => d !== '.');
    if (candidates.length === 0) return undefined;
    const d = pick(r, candidates);
    const mode = pick(r, DIR_MODES);
    const inner = childOf(d, `r${tag}`);
    const data = content(r, `re${tag}`);
    m.removeTree(d);
    m.entries.set(d, { type: 'dir', linked: false });
    m.entries.set(inner, { type: 'file', linked: false });
    touched.add(d).add(parentOf(d)).add(inner);
    return {
      desc: `re-create directory ${d} (0${mode.toString(8)}) holding only ${inner}`,
      async apply(dir) {
        await rm(join(dir, d), { recursive: true });
        await mkdir(join(dir, d));
        await chmod(join(dir, d), mode);
        await writeFile(join(dir, inner), data);
      },
    };
  }
  if (roll < 0.8) {
    const p = childOf(parent, `s${tag}`);
    const existing = m.nonRoot();
    const target = pick(r, ['../nowhere', '/etc/passwd', 'dangling', existing.length > 0 ? pick(r, existing) : 'x']);
    const [uid, gid] = pick(r, OWNERS);
    m.entries.set(p, { type: 'symlink', linked: false });
    touched.add(p).add(parent);
    return {
      desc: `symlink ${p} -> ${target} (${uid}:${gid})`,
      async apply(dir) {
        await symlink(target, join(dir, p));
        await lchown(join(dir, p), uid, gid);
      },
    };
  }
  if (roll < 0.87) {
    const candidates = m.nonRoot().filter((p) => !m.entries.get(p)!.linked);
    if (candidates.length === 0) return undefined;
    const p = pick(r, candidates);
    const [uid, gid] = pick(r, OWNERS);
    const isLink = m.entries.get(p)!.type === 'symlink';
    const isDir = m.entries.get(p)!.type === 'dir';
    const mode = pick(r, isDir ? DIR_MODES : FILE_MODES);
    return {
      desc: isLink ? `lchown ${p} ${uid}:${gid}` : `chown ${p} ${uid}:${gid}, chmod 0${mode.toString(8)}`,
      async apply(dir) {
        await lchown(join(dir, p), uid, gid);
        if (!isLink) await chmod(join(dir, p), mode);
      },
    };
  }
  if (roll < 0.91 && x) {
    const candidates = m.nonRoot().filter((p) => m.entries.get(p)!.type !== 'symlink' && !m.entries.get(p)!.linked);
    if (candidates.length === 0) return undefined;
    const p = pick(r, candidates);
    const name = pick(r, ['user.a', 'user.layer', 'user.long.name.for.a.value']);
    const value = Buffer.from(`value ${tag}`);
    return { desc: `setxattr ${p} ${name}=${value.toString()}`, apply: (dir) => x.set(dir, p, name, value) };
  }
  if (roll < 0.95) {
    const files = m.unlinkedFiles();
    if (files.length === 0) return undefined;
    const target = pick(r, files);
    const p = childOf(parent, `h${tag}`);
    m.entries.get(target)!.linked = true;
    m.entries.set(p, { type: 'file', linked: true });
    touched.add(parent);
    return { desc: `hardlink ${p} => ${target}`, apply: (dir) => link(join(dir, target), join(dir, p)) };
  }
  const movable = m.nonRoot().filter((p) => m.entries.get(p)!.type !== 'dir' && !m.entries.get(p)!.linked);
  if (movable.length === 0) return undefined;
  const from = pick(r, movable);
  const to = childOf(parent, `m${tag}`);
  m.entries.set(to, m.entries.get(from)!);
  m.entries.delete(from);
  touched.add(parentOf(from)).add(parent).add(to);
  return { desc: `rename ${from} -> ${to}`, apply: (dir) => rename(join(dir, from), join(dir, to)) };
}

/** Gives every touched path that still exists the layer's fixed atime/mtime. */
export async function fixTimes(dir: string, touched: Set<string>, seconds: number): Promise<void> {
  for (const p of touched) {
    const abs = p === '.' ? dir : join(dir, p);
    try {
      await lstat(abs);
    } catch {
      continue;
    }
    await lutimes(abs, seconds, seconds);
  }
}
