import { chmod, mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

function errnoError(code: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${code === 'ENOTDIR' ? 'not a directory' : 'cannot create'}, mkdir '${path}'`), { code, path, syscall: 'mkdir' });
}

/**
 * `mkdir -p` for paths a user names (store, mount target). Node 20's `mkdir(…, { recursive })`
 * never returns where a filesystem answers ENOENT under a parent that exists (procfs, sysfs: it
 * retries forever at full CPU); this creates each missing component once and reports the first
 * that cannot be made.
 */
/** Directories that hold content other users must never reach (a store, a snapshot root): owner only. */
export const PRIVATE_DIR_MODE = 0o700;
/** Files of a store (blobs, index.json, oci-layout, ingest state, locks): owner only. */
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Makes `path` (its missing parents with default modes) and leaves it 0700 whatever the umask,
 * also when it already existed with a looser mode (a store made by an older version): the one
 * chmod makes everything below unreachable by path for other users. A directory this process
 * may not chmod (another user's, a read-only mount) is left as it is.
 */
export async function ensurePrivateDir(path: string): Promise<void> {
  const abs = resolve(path);
  await mkdirAll(dirname(abs));
  try {
    await mkdir(abs, PRIVATE_DIR_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = await stat(abs);
  if (!st.isDirectory()) throw errnoError('ENOTDIR', abs);
  if ((st.mode & 0o777) === PRIVATE_DIR_MODE) return;
  try {
    await chmod(abs, PRIVATE_DIR_MODE);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'EROFS') throw err;
  }
}

export async function mkdirAll(path: string, mode?: number): Promise<void> {
  const missing: string[] = [];
  for (let p = resolve(path); ; ) {
    try {
      if (!(await stat(p)).isDirectory()) throw errnoError('ENOTDIR', p);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      missing.push(p);
      const parent = dirname(p);
      if (parent === p) break;
      p = parent;
    }
  }
  for (const dir of missing.reverse()) {
    try {
      await mkdir(dir, mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}
