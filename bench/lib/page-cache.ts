import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { runQuiet } from './measure.js';

const run = promisify(execFile);

/** The files `binaries` load: themselves and every shared library ldd lists for them. */
export async function withSharedLibraries(binaries: readonly string[]): Promise<string[]> {
  const files = new Set(binaries);
  for (const bin of binaries) {
    const { stdout } = await run('ldd', [bin]).catch(() => ({ stdout: '' })); // static binaries: "not a dynamic executable"
    for (const m of stdout.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)) files.add(m[1]!);
  }
  return [...files];
}

/**
 * Puts the machine's memory in the same state before every run: `sync`, drop the page cache, read
 * back `warm` (files, or directories read recursively) so inputs and binaries are cached again.
 *
 * Why: this VM hands free memory back to its host (virtio-balloon free page reporting, DAMON
 * pageout), and the first touch of such a page costs a host fault (~2.5 ms per MB here). Whether
 * a run found recently freed pages or only handed-back ones swung every tool by up to 40 %, and
 * most the tools that touch the most memory; after a drop, each run starts with the same plenty
 * of freed pages, as on a machine without a balloon.
 */
export async function resetPageCache(warm: readonly string[]): Promise<void> {
  await runQuiet('sync', []);
  await writeFile('/proc/sys/vm/drop_caches', '1\n');
  await runQuiet('bash', ['-c', 'find -L "$@" -type f -print0 | xargs -0 -r cat > /dev/null', 'bash', ...warm]);
}
