import { execFileSync } from 'node:child_process';

export const MiB = 1 << 20;

/** Bytes of `file` in the page cache, as util-linux's fincore reports them. */
export function cachedBytes(file: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());
}

/** Why page-cache residency cannot be checked for files in `dir` here, or undefined when it can. */
export function pageCacheUntestable(dir: string): string | undefined {
  try {
    execFileSync('fincore', ['--version']);
  } catch {
    return 'fincore (util-linux) is not installed';
  }
  const fs = execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim();
  // On tmpfs the page cache is the file itself: nothing can be dropped.
  return fs === 'tmpfs' || fs === 'ramfs' ? `the temp directory is on ${fs}` : undefined;
}
