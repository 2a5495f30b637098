import { isStratumError } from '../errors.js';
import type { BlobInfo } from './content.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { isImageManifestMediaType, isIndexMediaType, isSchema1MediaType } from '../oci/mediatypes.js';
import { DEFAULT_MAX_READ_BYTES, type IngestEntry, type OciStore } from './store.js';
import type { ImageIndex } from '../oci/types.js';
import { leasedDigests } from './lease.js';

export interface GcOptions {
  /** Report what would go without deleting anything. */
  dryRun?: boolean;
  /** Partial downloads untouched for this long (and not locked) are deleted. Default one hour. */
  ingestMaxAgeMs?: number;
  /** Also keep unreferenced blobs committed up to this long before GC started (a pull tags its image last). Default 0. */
  gracePeriodMs?: number;
  /** Manifests and indexes bigger than this are kept but not parsed. Default 4 MiB. */
  maxManifestBytes?: number;
}

export interface RemovedIngest {
  name: string;
  digest: Digest | undefined;
  bytes: number;
}

export interface GcResult {
  removed: BlobInfo[];
  removedIngests: RemovedIngest[];
  /** Bytes of removed blobs plus removed partial downloads. */
  bytesFreed: number;
  /** Referenced digests whose blob is missing from the store (a broken image; reported, not fatal). */
  missing: Digest[];
}

export interface MarkResult {
  referenced: Set<Digest>;
  missing: Digest[];
}

/** Annotation keys ending in this name a digest that is a root too (e.g. `dev.stratum.source.digest` keeps a schema1 original alive). */
const DIGEST_ANNOTATION_SUFFIX = '.digest';
/** Media type used for children that are never parsed (schema1 fsLayers carry no media type). */
const LEAF = 'application/octet-stream';

/**
 * Mark and sweep. Roots are index.json's entries and the digests of live leases. The index lock is held from reading index.json to the end of the sweep, so
 * no tag can appear meanwhile; blobs committed after GC started (commit sets mtime, rename sets
 * ctime) are never removed, so a concurrent ingest is safe.
 */
export async function collectGarbage(store: OciStore, options: GcOptions = {}): Promise<GcResult> {
  const started = Date.now();
  const dryRun = options.dryRun ?? false;
  const keepNewerThan = started - (options.gracePeriodMs ?? 0);
  const ingestCutoff = started - (options.ingestMaxAgeMs ?? 60 * 60 * 1000);
  const maxBytes = options.maxManifestBytes ?? DEFAULT_MAX_READ_BYTES;

  return store.withIndexLock(async (index) => {
    const { referenced, missing } = await markReferenced(store, index, maxBytes, await leasedDigests(store.root, dryRun));
    const result: GcResult = { removed: [], removedIngests: [], bytesFreed: 0, missing };
    const candidates: BlobInfo[] = [];
    for await (const blob of store.blobs()) {
      if (referenced.has(blob.digest)) continue;
      if (Math.max(blob.mtimeMs, blob.ctimeMs) >= keepNewerThan) continue;
      candidates.push({ digest: blob.digest, size: blob.size });
    }
    for (const blob of candidates) {
      if (!dryRun && !(await store.deleteBlob(blob.digest))) continue;
      result.removed.push(blob);
      result.bytesFreed += blob.size;
    }
    for await (const entry of store.ingests()) {
      const bytes = await store.reclaimIngest(entry, resumable(entry) ? ingestCutoff : Number.POSITIVE_INFINITY, dryRun);
      if (bytes === undefined) continue;
      result.removedIngests.push({ name: entry.name, digest: entry.digest, bytes });
      result.bytesFreed += bytes;
    }
    return { result };
  });
}

/**
 * A partial download (`<alg>-<hex>`) is kept a while for a later pull to resume; any other ingest
 * directory (a commit's layer being written) can never be resumed, so it goes as soon as its
 * writer is gone (its lock is free or stale).
 */
function resumable(entry: IngestEntry): boolean {
  return entry.digest !== undefined;
}

/** Removes the ingest directories that cannot be resumed and whose writer is gone (see resumable). */
export async function reclaimDeadWriterIngests(store: OciStore): Promise<RemovedIngest[]> {
  const removed: RemovedIngest[] = [];
  for await (const entry of store.ingests()) {
    if (resumable(entry)) continue;
    const bytes = await store.reclaimIngest(entry, Number.POSITIVE_INFINITY);
    if (bytes !== undefined) removed.push({ name: entry.name, digest: undefined, bytes });
  }
  return removed;
}

/**
 * Every digest reachable from index.json: its entries, their `*.digest` annotations, and recursively
 * the children of each manifest and index (config, layers, manifests, subject; schema1 fsLayers).
 */
export async function markReferenced(
  store: OciStore,
  index: ImageIndex,
  maxManifestBytes = DEFAULT_MAX_READ_BYTES,
  leased: Iterable<Digest> = [],
): Promise<MarkResult> {
  const referenced = new Set<Digest>();
  const missing: Digest[] = [];
  const queue: ChildReference[] = [];
  // Leased blobs are roots; an in-flight pull may not have fetched them yet, so they are not "missing".
  for (const digest of leased) referenced.add(digest);
  queue.push(...indexRoots(index));
  while (queue.length > 0) {
    const { digest, mediaType } = queue.pop()!;
    if (referenced.has(digest)) continue;
    referenced.add(digest);
    const info = await store.info(digest);
    if (!info) {
      missing.push(digest);
      continue;
    }
    if (!mayHoldReferences(mediaType) || info.size > maxManifestBytes) continue;
    for (const child of await childrenOf(store, digest, maxManifestBytes)) queue.push(child);
  }
  return { referenced, missing };
}

/** The roots of index.json: its entries (with their sizes) and the digests their `*.digest` annotations name. */
export function indexRoots(index: ImageIndex): ChildReference[] {
  const roots: ChildReference[] = [];
  for (const entry of index.manifests) {
    if (isDigest(entry.digest)) roots.push({ digest: entry.digest, mediaType: entry.mediaType, ...(typeof entry.size === 'number' ? { size: entry.size } : {}) });
    for (const [key, value] of Object.entries(entry.annotations ?? {})) {
      if (key.endsWith(DIGEST_ANNOTATION_SUFFIX) && isDigest(value)) roots.push({ digest: value, mediaType: undefined });
    }
  }
  return roots;
}

/** A descriptor's blob is parsed when it is a manifest or index, or when its type is unknown (annotation roots). */
export function mayHoldReferences(mediaType: string | undefined): boolean {
  return mediaType === undefined || isIndexMediaType(mediaType) || isImageManifestMediaType(mediaType) || isSchema1MediaType(mediaType);
}

/** A blob a manifest or index points to, with what its descriptor says about it (schema1 fsLayers say no size). */
export interface ChildReference {
  digest: Digest;
  mediaType: string | undefined;
  size?: number;
}

/** The blobs the manifest or index `digest` points to; none when it is not JSON (or too big to read whole). */
export async function childrenOf(store: OciStore, digest: Digest, maxBytes: number = DEFAULT_MAX_READ_BYTES): Promise<ChildReference[]> {
  let doc: unknown;
  try {
    doc = JSON.parse((await store.read(digest, maxBytes)).toString('utf8'));
  } catch (err) {
    // Not JSON (an annotation pointing at a layer) or a corrupt blob: it is kept, but it has no children.
    if (err instanceof SyntaxError || isStratumError(err)) return [];
    throw err;
  }
  if (typeof doc !== 'object' || doc === null) return [];
  const out: ChildReference[] = [];
  const add = (d: unknown): void => {
    if (typeof d !== 'object' || d === null) return;
    const { digest: child, mediaType, size } = d as { digest?: unknown; mediaType?: unknown; size?: unknown };
    if (!isDigest(child)) return;
    out.push({ digest: child, mediaType: typeof mediaType === 'string' ? mediaType : undefined, ...(typeof size === 'number' ? { size } : {}) });
  };
  const m = doc as { manifests?: unknown; config?: unknown; layers?: unknown; subject?: unknown; fsLayers?: unknown; blobs?: unknown };
  if (Array.isArray(m.manifests)) m.manifests.forEach(add);
  add(m.config);
  if (Array.isArray(m.layers)) m.layers.forEach(add);
  add(m.subject);
  if (Array.isArray(m.fsLayers)) {
    for (const l of m.fsLayers) {
      const sum = (l as { blobSum?: unknown } | null)?.blobSum;
      if (isDigest(sum)) out.push({ digest: sum, mediaType: LEAF });
    }
  }
  return out;
}
