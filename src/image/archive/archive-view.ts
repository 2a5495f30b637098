import { ArchiveError, DigestMismatchError, SizeMismatchError, UnsafeEntryError } from '../../errors.js';
import type { Lease } from '../../content/lease.js';
import type { OciStore } from '../../content/store.js';
import { digestAlgorithm, digestHex, type Digest } from '../../oci/digest.js';
import { normaliseEntryPath } from '../../unpack/entry-path.js';
import { MAX_METADATA_BYTES, type ArchiveEntry, type FileEntry } from './entries.js';

const MAX_LINK_HOPS = 40;

/**
 * The entries of an archive once read: paths resolved through its links (never outside it), the
 * bytes of small files, and blobs checked against the digests and sizes that name them.
 */
export class ArchiveView {
  constructor(
    private readonly entries: Map<string, ArchiveEntry>,
    private readonly store: OciStore,
    private readonly lease: Lease,
  ) {}

  has(path: string): boolean {
    return this.entries.has(path);
  }

  /**
   * The file `path` names (as manifest.json or index.json gives it), following symlinks and
   * hardlinks in any component, as Docker's safePath does inside its scope.
   */
  file(path: string, from: string): FileEntry {
    const verdict = normaliseEntryPath(path);
    if (!verdict.ok) throw new UnsafeEntryError(`image archive ${from}`, path, verdict.reason);
    let parts = verdict.path.split('/');
    let hops = 0;
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const entry = this.entries.get(prefix);
      if (entry?.kind === 'link') {
        if (++hops > MAX_LINK_HOPS) throw new ArchiveError(path, `more than ${MAX_LINK_HOPS} links to follow (a loop?)`);
        parts = [...entry.target.split('/').filter(Boolean), ...parts.slice(i)];
        i = 0;
        continue;
      }
      if (i === parts.length) {
        if (entry?.kind === 'file') return entry;
        throw new ArchiveError(path, `${from} names it, but ${entry ? 'it is a directory' : 'the archive has no such file'}`);
      }
    }
    throw new ArchiveError(path, `${from} names it, but the archive has no such file`);
  }

  /** The blob `digest` at `blobs/<alg>/<hex>`, checked against the digest and (when given) the size that name it. */
  blob(digest: Digest, size: number | undefined, from: string): FileEntry {
    const path = `blobs/${digestAlgorithm(digest)}/${digestHex(digest)}`;
    if (digestAlgorithm(digest) !== 'sha256') throw new ArchiveError(path, `${from}: only sha256 blobs are read`);
    const entry = this.file(path, from);
    if (entry.digest !== digest) throw new DigestMismatchError(`image archive entry ${JSON.stringify(path)} (${from})`, digest, entry.digest);
    if (size !== undefined && entry.size !== size) throw new SizeMismatchError(`image archive entry ${JSON.stringify(path)} (${from})`, size, entry.size);
    return entry;
  }

  /** A small file's bytes (from memory, else read back from the store, digest checked). */
  async bytes(entry: FileEntry): Promise<Buffer> {
    if (entry.data) return entry.data;
    if (entry.size > MAX_METADATA_BYTES) throw new ArchiveError(entry.path, `${entry.size} bytes, over the ${MAX_METADATA_BYTES}-byte limit for a config or manifest`);
    return this.store.read(entry.digest);
  }

  /** The file's diffID (its decompressed digest), or an error naming it when it is no layer. */
  diffId(entry: FileEntry): Digest {
    if (entry.diffId === undefined) throw new ArchiveError(entry.path, `not a readable ${entry.compression} layer: ${entry.diffIdError ?? 'not decompressed'}`);
    return entry.diffId;
  }

  /** Makes sure the file is a blob in the store (metadata kept in memory is put there, leased first). */
  async ensureStored(entry: FileEntry): Promise<void> {
    if (entry.stored) return;
    await this.lease.add(entry.digest);
    await this.store.put(entry.data!, entry.digest);
    entry.stored = true;
  }
}
