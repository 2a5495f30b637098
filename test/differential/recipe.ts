/**
 * A scripted recipe of filesystem operations, applied to an empty staging directory: what one
 * layer's upper directory holds before a real tar writer archives it. Whiteouts are staged the
 * way real layers get them: as literal `.wh.<name>` and `.wh..wh..opq` files.
 */
import { execFile } from 'node:child_process';
import { chmod, link, lchown, lstat, lutimes, mkdir, open, readdir, symlink, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { lsetxattr } from '../../src/sys/native.js';

const run = promisify(execFile);

/** A path relative to the staging root; a Buffer for names that are not valid UTF-8. */
export type RelPath = string | Buffer;

interface Meta {
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch (may be negative or fractional); default: the layer's own time. */
  mtime?: number;
}

export type Op =
  | ({ op: 'dir'; path: RelPath } & Meta)
  | ({ op: 'file'; path: RelPath; content?: string | Buffer; xattrs?: Record<string, Buffer> } & Meta)
  /** A file of `size` bytes that holds only `data` (offset → text) and holes elsewhere. */
  | ({ op: 'sparse'; path: RelPath; size: number; data: [number, string][] } & Meta)
  | ({ op: 'symlink'; path: RelPath; target: RelPath } & Omit<Meta, 'mode'>)
  | { op: 'hardlink'; path: RelPath; target: RelPath }
  | ({ op: 'char' | 'block'; path: RelPath; major: number; minor: number } & Meta)
  | ({ op: 'fifo'; path: RelPath } & Meta)
  /** `<dir of path>/.wh.<base of path>` */
  | { op: 'whiteout'; path: RelPath }
  /** `<path>/.wh..wh..opq` */
  | { op: 'opaque'; path: RelPath };

const SLASH = 0x2f;

function bytes(p: RelPath): Buffer {
  return typeof p === 'string' ? Buffer.from(p) : p;
}

function joinBytes(...parts: RelPath[]): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    if (out.length) out.push(Buffer.from('/'));
    out.push(bytes(p));
  }
  return Buffer.concat(out);
}

function splitParent(p: RelPath): { parent: Buffer | undefined; base: Buffer } {
  const b = bytes(p);
  const i = b.lastIndexOf(SLASH);
  return i < 0 ? { parent: undefined, base: b } : { parent: b.subarray(0, i), base: b.subarray(i + 1) };
}

/**
 * Applies `ops` inside `root` (which must exist and be empty). Every path is used relative to
 * `root` with the process's cwd there, so paths up to PATH_MAX work whatever the root's own
 * length. Parents are created as needed (0755); afterwards every entry gets its mtime (the op's
 * or `defaultMtime`), deepest first, so creating children does not disturb a parent's time.
 */
export async function applyRecipe(root: string, ops: readonly Op[], defaultMtime: number): Promise<void> {
  const cwd = process.cwd();
  process.chdir(root);
  try {
    const mtimes = new Map<string, number>();
    const key = (p: RelPath) => bytes(p).toString('latin1');
    const parents = async (p: RelPath) => {
      const { parent } = splitParent(p);
      if (parent) await mkdir(parent, { recursive: true, mode: 0o755 });
    };
    const meta = async (path: Buffer, m: Meta, isLink = false) => {
      if (m.uid !== undefined || m.gid !== undefined) await lchown(path, m.uid ?? 0, m.gid ?? 0);
      if (m.mode !== undefined && !isLink) await chmod(path, m.mode);
      if (m.mtime !== undefined) mtimes.set(key(path), m.mtime);
    };
    for (const o of ops) {
      const path = bytes(o.path);
      await parents(path);
      switch (o.op) {
        case 'dir':
          await mkdir(path, { recursive: true, mode: 0o755 });
          await meta(path, o);
          break;
        case 'file':
          await writeFile(path, o.content ?? '', { mode: 0o644 });
          for (const [name, value] of Object.entries(o.xattrs ?? {})) lsetxattr(`${root}/${path.toString('utf8')}`, name, value);
          await meta(path, o);
          break;
        case 'sparse': {
          const fh = await open(path, 'w', 0o644);
          try {
            await fh.truncate(o.size);
            for (const [offset, text] of o.data) await fh.write(Buffer.from(text), 0, Buffer.byteLength(text), offset);
          } finally {
            await fh.close();
          }
          await meta(path, o);
          break;
        }
        case 'symlink':
          await symlink(bytes(o.target), path);
          await meta(path, o, true);
          break;
        case 'hardlink':
          await link(bytes(o.target), path);
          break;
        case 'char':
        case 'block':
          await run('mknod', ['-m', (o.mode ?? 0o644).toString(8), path.toString('utf8'), o.op === 'char' ? 'c' : 'b', String(o.major), String(o.minor)]);
          await meta(path, { ...o, mode: undefined });
          break;
        case 'fifo':
          await run('mknod', ['-m', (o.mode ?? 0o644).toString(8), path.toString('utf8'), 'p']);
          await meta(path, { ...o, mode: undefined });
          break;
        case 'whiteout': {
          const { parent, base } = splitParent(path);
          await writeFile(parent ? joinBytes(parent, Buffer.concat([Buffer.from('.wh.'), base])) : Buffer.concat([Buffer.from('.wh.'), base]), '', { mode: 0o644 });
          break;
        }
        case 'opaque':
          await mkdir(path, { recursive: true, mode: 0o755 });
          await writeFile(joinBytes(path, '.wh..wh..opq'), '', { mode: 0o644 });
          break;
      }
    }
    await setTimes(Buffer.from('.'), mtimes, defaultMtime);
    await lutimes('.', defaultMtime, defaultMtime);
  } finally {
    process.chdir(cwd);
  }
}

/** Sets every entry's mtime (and atime) below and including `dir`, children before parents. */
async function setTimes(dir: Buffer, mtimes: Map<string, number>, defaultMtime: number): Promise<void> {
  for (const name of await readdir(dir, { encoding: 'buffer' })) {
    const path = dir.equals(Buffer.from('.')) ? name : joinBytes(dir, name);
    const st = await lstat(path);
    if (st.isDirectory()) await setTimes(path, mtimes, defaultMtime);
    else {
      const t = mtimes.get(path.toString('latin1')) ?? defaultMtime;
      await lutimes(path, t, t);
    }
  }
  if (!dir.equals(Buffer.from('.'))) {
    const t = mtimes.get(dir.toString('latin1')) ?? defaultMtime;
    await lutimes(dir, t, t);
  }
}
