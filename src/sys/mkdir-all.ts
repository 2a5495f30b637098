import { mkdir, stat } from 'node:fs/promises';
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
