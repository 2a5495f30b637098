import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh directory under the OS temp dir; its name starts with `stratum-<prefix>-`. */
export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `stratum-${prefix}-`));
}

/** Removes a directory tree; a missing directory is not an error. */
export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Every mount point of this process's mount namespace (/proc/self/mountinfo, octal escapes undone). */
export async function mountPoints(): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

/** Lazily unmounts whatever is mounted at or under any of `roots`, deepest first. */
export async function unmountUnder(roots: readonly string[]): Promise<void> {
  const points = (await mountPoints()).filter((p) => roots.some((r) => p === r || p.startsWith(`${r}/`)));
  for (const p of points.sort((a, b) => b.length - a.length)) await promisify(execFile)('umount', ['-l', p]).catch(() => {});
}

/**
 * Collects temp dirs made during a test file and removes them all at once,
 * e.g. `const tmp = new TempDirs(); after(() => tmp.cleanup());`. Anything a failed test left
 * mounted under them is unmounted first: a recursive remove must never descend into a mount.
 */
export class TempDirs {
  private readonly dirs: string[] = [];
  async make(prefix: string): Promise<string> {
    const dir = await tempDir(prefix);
    this.dirs.push(dir);
    return dir;
  }
  async cleanup(): Promise<void> {
    const dirs = this.dirs.splice(0);
    await unmountUnder(dirs);
    await Promise.all(dirs.map((d) => removeDir(d)));
  }
}
