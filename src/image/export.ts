import { lstat } from 'node:fs/promises';
import { readdirNames, underDir } from '../sys/byte-path.js';
import type { Writable } from 'node:stream';
import { TreeTarWriter, type TreeTarOptions } from '../tar/tree-writer.js';

/**
 * Writes the tree under `dir` as a tar stream (see TreeTarWriter for what each entry keeps),
 * entries sorted by name so the same tree always gives the same tar. Files are streamed, never
 * read whole; the output's backpressure is honoured.
 */
export async function writeTreeAsTar(dir: string, out: Writable, options: TreeTarOptions = {}): Promise<{ entries: number }> {
  const tar = new TreeTarWriter(out, options);
  async function walk(rel: string): Promise<void> {
    for (const name of (await readdirNames(underDir(dir, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const abs = underDir(dir, path);
      const st = await lstat(abs, { bigint: true });
      if ((await tar.entry(abs, path, st)) && st.isDirectory()) await walk(path);
    }
  }
  await walk('');
  await tar.end();
  return { entries: tar.entries };
}
