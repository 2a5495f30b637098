import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isCode } from './layout.js';
import type { Digest } from '../oci/digest.js';

/** Where a blob is known to be: a registry and a repository in it (containerd's distribution-source labels). */
export interface BlobSource {
  registry: string;
  repository: string;
}

/**
 * `STORE/sources.log`: one `DIGEST REGISTRY/REPOSITORY` line per place a blob was pulled from,
 * copied from or pushed to. One small append-only file (not a file per blob: those would cost a
 * block each). A hint only: a stale line (a deleted blob, a repository emptied since) costs one
 * refused mount, then an upload, so nothing is ever rewritten under a concurrent writer.
 */
export const SOURCES_LOG = 'sources.log';

/** Remembers that each blob is in its source; lines already there are not written again. */
export async function recordSources(root: string, entries: ReadonlyArray<{ digest: Digest; source: BlobSource }>): Promise<void> {
  const known = new Set(await readLines(root));
  const fresh = [...new Set(entries.map((e) => `${e.digest} ${e.source.registry}/${e.source.repository}`))].filter((l) => !known.has(l));
  // One append of whole lines: O_APPEND writes do not interleave between processes.
  if (fresh.length > 0) await appendFile(join(root, SOURCES_LOG), fresh.map((l) => `${l}\n`).join(''));
}

export function recordSource(root: string, digest: Digest, source: BlobSource): Promise<void> {
  return recordSources(root, [{ digest, source }]);
}

/** The places `digest` is known to be, most recent last. */
export async function blobSources(root: string, digest: Digest): Promise<BlobSource[]> {
  const out: BlobSource[] = [];
  for (const line of await readLines(root)) {
    const space = line.indexOf(' ');
    if (line.slice(0, space) !== digest) continue;
    const place = line.slice(space + 1);
    const slash = place.indexOf('/');
    if (slash > 0) out.push({ registry: place.slice(0, slash), repository: place.slice(slash + 1) });
  }
  return out;
}

async function readLines(root: string): Promise<string[]> {
  try {
    return (await readFile(join(root, SOURCES_LOG), 'utf8')).split('\n').filter((l) => l !== '');
  } catch (err) {
    if (isCode(err, 'ENOENT')) return [];
    throw err;
  }
}
