import { mkdtemp, rm } from 'node:fs/promises';
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

/**
 * Collects temp dirs made during a test file and removes them all at once,
 * e.g. `const tmp = new TempDirs(); after(() => tmp.cleanup());`.
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
    await Promise.all(dirs.map((d) => removeDir(d)));
  }
}
